"""``pycontainers``: Docker's verbs, flags and columns over the same core as the Python API.

Thin on purpose: each command parses its flags, calls one core function and prints the result. Tables
are drawn with rich in a terminal and as Docker's plain columns when piped (or with ``--format``).
Errors are one line on stderr, never a traceback. Imports are lazy so the command starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _store() -> Any:
    from .store import Store

    return Store()


def _print_table(table: Any, fmt: str | None = None, quiet_column: str | None = None,
                 quiet: bool = False) -> None:
    if quiet and quiet_column:
        seen: list[str] = []
        for row in table.rows:
            if row[quiet_column] not in seen:
                seen.append(row[quiet_column])
        print("\n".join(seen)) if seen else None
        return
    if fmt:
        out = table.format(fmt)
        if out:
            print(out)
        return
    # Docker's plain columns on a terminal too: a boxed table folds IDs across lines, which students
    # then cannot copy into the next command (pycontainers rm 6368153a0...)
    print(table.plain())


# ------------------------------------------------------------------------------------------- images


def cmd_images(a: argparse.Namespace) -> int:
    from .api import Client
    from .tables import images_table

    client = Client()
    if a.filter and a.filter != ["dangling=true"] and a.filter != ["dangling=false"]:
        raise _usage(f"unsupported filter {a.filter}: only dangling=true|false")
    filters = {"dangling": a.filter[0].split("=", 1)[1]} if a.filter else None
    images = [i.core for i in client.images.list(name=a.repository, all=a.all, filters=filters)]
    table = images_table(images, no_trunc=a.no_trunc, digests=a.digests, repository=a.repository)
    _print_table(table, a.format, "ID", a.quiet)
    return 0


def cmd_history(a: argparse.Namespace) -> int:
    from .image import get_image
    from .tables import history_table

    table = history_table(get_image(_store(), a.image), no_trunc=a.no_trunc, human=a.human)
    _print_table(table, a.format, "ID", a.quiet)
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    """``inspect NAME...``: the JSON of a container, an image, a network or a volume, looked up in that order
    (Docker's), or of one kind (``--type``); ``container inspect`` and ``image inspect`` look for their own."""
    from .api import container_inspect, inspect, network_inspect
    from .container import get_container, volume_inspect
    from .image import get_image

    store = _store()
    finders: dict[str, Callable[[str], dict[str, Any]]] = {
        "container": lambda name: container_inspect(get_container(store, name)),
        "image": lambda name: inspect(get_image(store, name)),
        "network": lambda name: network_inspect(store, name),
        "volume": lambda name: volume_inspect(store, name)}
    kind = a.command if getattr(a, "subcommand", None) == "inspect" else getattr(a, "type", None)
    return _print_inspected(a.names, [finders[kind]] if kind else list(finders.values()), a.format, kind)


def _print_inspected(names: list[str], finders: list[Callable[[str], dict[str, Any]]], template: str | None,
                     kind: str | None = None) -> int:
    """Docker's ``inspect``: each name looked up by each finder in turn; the documents found printed (a JSON
    array, or *template* for each), then an error line for each name none found (exit 1), as Docker prints
    what it found even when a name is missing."""
    from .errors import NotFound
    from .reference import InvalidReference

    docs, status = [], 0
    for name in names:
        for find in finders:
            try:
                docs.append(find(name))
                break
            except (NotFound, InvalidReference) as exc:
                missing = str(exc) if kind else f"No such object: {name}"
        else:
            print(f"Error: {missing}", file=sys.stderr)
            status = 1
    if template:
        from .tables import format_document

        if docs:
            print("\n".join(format_document(doc, template) for doc in docs))  # (TemplateError: see main)
    else:  # ([] when nothing was found, as Docker's)
        print(json.dumps(docs, indent=4))
    return status


def cmd_tag(a: argparse.Namespace) -> int:
    from .image import get_image, normalize_tag

    store = _store()
    image = get_image(store, a.source)
    store.set_tag(normalize_tag(a.target), store.manifest_descriptor(image.manifest_digest))
    return 0


def _say_default_tag(name: str, quiet: bool) -> None:
    """Docker's CLI names the tag it takes for a name without one, before a pull or a push."""
    from .reference import parse

    if not quiet and (ref := parse(name, default_tag=None)).tag is None and ref.digest is None:
        print("Using default tag: latest", flush=True)


def cmd_pull(a: argparse.Namespace) -> int:
    from . import registry

    _say_default_tag(a.name, a.quiet)
    pulled = registry.pull(_store(), a.name, on_event=None if a.quiet else registry.line_printer())
    print(pulled.reference)
    return 0


def cmd_push(a: argparse.Namespace) -> int:
    from . import registry

    _say_default_tag(a.name, a.quiet)
    registry.push(_store(), a.name, on_event=None if a.quiet else registry.line_printer())
    return 0


def cmd_registry_serve(a: argparse.Namespace) -> int:
    from .registry import LocalRegistry, RegistryError

    root = a.dir or str(_store().home / "registry")
    with LocalRegistry(root, port=a.port) as reg:
        print(f"A registry is serving at {reg.address} (it keeps images in {root}); "
              f"push to it as {reg.address}/NAME:TAG. Ctrl-C stops it.", flush=True)
        try:
            reg.process.wait()
        except KeyboardInterrupt:
            return 0
    raise RegistryError(f"the registry stopped by itself (status {reg.process.returncode}); see {root}/registry.log")


def cmd_rmi(a: argparse.Namespace) -> int:
    from .api import remove_image
    from .errors import PyContainersError

    store = _store()
    status = 0
    for name in a.images:
        try:
            for line in remove_image(store, name, force=a.force, prune=not a.no_prune):
                for key, value in line.items():
                    print(f"{key}: {value}")
        except PyContainersError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            status = 1
    return status


def cmd_image_prune(a: argparse.Namespace) -> int:
    from .api import prune_images
    from .units import human_size

    what = "all images without at least one container associated to them" if a.all else "all dangling images"
    if not _confirm(what, a.force):
        return 0
    result = prune_images(_store(), all_images=a.all)
    _print_section("Deleted Images:", _image_report_lines(result["ImagesDeleted"]))
    print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0


def cmd_save(a: argparse.Namespace) -> int:
    from . import archive

    store = _store()
    if a.output:
        tmp = a.output + ".partial"
        try:
            with open(tmp, "wb") as f:
                archive.save(store, a.images, f, fmt=a.format)
            os.replace(tmp, a.output)
        except OSError as exc:
            raise _file_error(f"failed to save image: cannot write {a.output}: {exc.strerror}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        if sys.stdout.isatty():
            raise _usage("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        archive.save(store, a.images, sys.stdout.buffer, fmt=a.format)
    return 0


def cmd_load(a: argparse.Namespace) -> int:
    from . import archive
    from .reference import parse

    store = _store()
    if a.input:
        try:
            f = open(a.input, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise _file_error(f"open {a.input}: {exc.strerror}") from None
        with f:
            loaded = archive.load_tagged(store, f)
    else:
        if sys.stdin.isatty():
            raise _usage("requested load from stdin, but stdin is empty")
        loaded = archive.load_tagged(store, sys.stdin.buffer)
    if not a.quiet:  # one line per tag the archive gave (or per untagged image), as docker load
        lines = [f"Loaded image: {parse(tag).familiar}" for _, tags in loaded for tag in tags]
        lines += [f"Loaded image ID: {image.id}" for image, tags in loaded if not tags]
        print("\n".join(dict.fromkeys(lines)))
    return 0


# --------------------------------------------------------------------------------------- containers


def _run_options(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "entrypoint": a.entrypoint, "environment": a.env or [], "env_files": a.env_file or [],
        "workdir": a.workdir, "user": a.user, "volumes": a.volume or [], "hostname": a.hostname,
        "read_only": a.read_only, "init": a.init, "memory": a.memory, "pids_limit": a.pids_limit, "cpus": a.cpus,
        "network": a.network, "tty": a.tty, "interactive": a.interactive, "runtime": a.runtime,
        "ports": a.publish or [], "publish_all": a.publish_all, "network_aliases": a.network_alias or [],
        "ip": a.ip, "extra_hosts": a.add_host or [], "healthcheck": _health_flags(a), "labels": _labels(a.label),
    }


def _labels(given: list[str] | None) -> dict[str, str] | None:
    """``-l KEY=VALUE`` (or ``-l KEY``: an empty value, as Docker's) as a dict; None when there are none."""
    if not given:
        return None
    return dict((key, value) for key, _, value in (text.partition("=") for text in given))


def _health_flags(a: argparse.Namespace) -> dict[str, Any] | None:
    """``--health-*`` and ``--no-healthcheck`` as the container's health check (over the image's)."""
    from .spec import healthcheck_from_flags

    return healthcheck_from_flags(a.health_cmd, a.health_interval, a.health_timeout, a.health_retries,
                                  a.health_start_period, a.health_start_interval, a.no_healthcheck)


def _no_terminal_to_read(tty: bool, interactive: bool) -> bool:
    """``-it`` with stdin that is not a terminal (a pipe, a notebook's ``!``): Docker refuses at once, as
    a session whose keys can never come would wait forever."""
    if tty and interactive and not os.isatty(0):
        print("pycontainers: the input device is not a TTY", file=sys.stderr)
        return True
    if interactive and os.environ.get("JPY_PARENT_PID") and os.isatty(0):
        # A notebook's `!` gives the command a terminal that nobody types into: the cell would wait for ever.
        print("pycontainers: -i waits for your typing, which a notebook cell cannot send: leave -i (and -t) out "
              "here, or run the command in a terminal (File > New > Terminal)", file=sys.stderr)
        return True
    return False


def _not_running(container: Any) -> bool:
    """exec and top need a running container; Docker says so and exits 1 (125 is for what could not start)."""
    if container.status == "running":
        return False
    print(f"Error: container {container.name} is not running", file=sys.stderr)
    return True


def cmd_create(a: argparse.Namespace) -> int:
    """``docker create``: the container, made and not started; its ID."""
    from .container import ContainerError, create_from_image
    from .errors import PyContainersError

    try:
        container = create_from_image(_store(), a.image, a.command or None, name=a.name, auto_remove=a.rm,
                                      **_run_options(a))
    except (PyContainersError, ValueError) as exc:  # as `run`'s: Docker's 125 for what stops the engine
        print(f"pycontainers: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 125) if isinstance(exc, ContainerError) else 125
    print(container.id)
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from .container import ContainerError, create_from_image, forward_signal
    from .errors import PyContainersError
    from .runtime import is_external, start, start_detached

    if not a.detach and _no_terminal_to_read(a.tty, a.interactive):
        return 1
    store = _store()
    try:
        container = create_from_image(store, a.image, a.command or None, name=a.name, auto_remove=a.rm,
                                      **_run_options(a))
    except (PyContainersError, ValueError) as exc:  # (ValueError: a malformed option value, -m 10x)
        print(f"pycontainers: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 125) if isinstance(exc, ContainerError) else 125
    if a.detach:
        first = start_detached(container)
        if first["event"] == "error":
            print(f"pycontainers: {first['message']}", file=sys.stderr)
            return int(first["exit_code"])  # type: ignore[call-overload]
        print(container.id)
        return 0
    return _attached(lambda stdio: start(container, stdio), a.interactive, a.tty,
                     console_socket=not is_external(container),
                     log=None if a.rm else container.log_path(),
                     deliver=lambda pid, sig: forward_signal(container, pid, sig))


def _attached(starter: Callable[[tuple[int, int, int]], Any], interactive: bool, tty: bool = False,
              console_socket: bool = True, log: Path | None = None,
              deliver: Callable[[int, int], None] | None = None) -> int:
    """Run a process on this terminal's stdout/stderr (stdin too with -i) and return its exit code.

    Like Docker's --sig-proxy, Ctrl-C and other termination signals are passed on to the process, by
    *deliver* (pid, signal) if given (``container.forward_signal``: proot passes none on itself).
    *log*: with *tty*, where to append the session's output too (without, the monitor logs it).
    """
    if tty:
        return _attached_tty(starter, interactive, console_socket, log)
    target: list[int] = []  # the process's PID once it has started
    early: list[int] = []  # signals that came before: passed on as soon as it has

    def forward(signum: int, _frame: object) -> None:
        if not target:
            early.append(signum)
            return
        if deliver is not None:
            deliver(target[0], signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(target[0], signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            events = starter((stdin, 1, 2))
        finally:
            if stdin != 0:
                os.close(stdin)
        first = events.next()
        if first["event"] == "error":
            print(f"pycontainers: {first['message']}", file=sys.stderr)
            return int(first["exit_code"])
        target.append(int(first["pid"]))
        for signum in early:
            forward(signum, None)
        last = events.next()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    events.close()
    return int(last.get("exit_code", 125))


def _attached_tty(starter: Callable[[tuple[int, int, int]], Any], interactive: bool, console_socket: bool,
                  log: Path | None = None) -> int:
    """``-t``: the process gets a pseudo-terminal; we relay between it and ours, in raw mode.

    Raw mode hands every key (Ctrl-C, Ctrl-Z, arrows) to the terminal inside, whose line discipline
    turns Ctrl-C into SIGINT for *its* foreground job: job control works as in a local shell. What the
    terminal shows is appended to *log* too (``docker logs`` of a ``-t`` container: the session, \r\n and
    all); the monitor never sees it, as we hold the terminal.
    """
    import fcntl
    import select
    import termios
    import tty

    from .logs import LogWriter
    from .runtime import ConsoleEnd

    def window_size() -> bytes | None:
        with contextlib.suppress(OSError):
            return fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        return None

    def copy_window_size(*_: object) -> None:
        with contextlib.suppress(OSError, TypeError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, window_size())

    console = ConsoleEnd(console_socket, window_size())  # (without a console socket, the terminal is made here)
    master = console.master
    try:
        events = starter((console.container_end,) * 3)
    finally:
        os.close(console.container_end)
    first = events.next()
    if first["event"] != "error":
        master = console.receive()
    if first["event"] == "error" or master < 0:
        console.close()
        print(f"pycontainers: {first.get('message', 'no terminal came back from the container')}", file=sys.stderr)
        return int(first.get("exit_code", 125))
    copy_window_size()
    signal.signal(signal.SIGWINCH, copy_window_size)
    previous = {}
    if not interactive:  # Ctrl-C is not a key for the container then, but a signal to us: pass it on (sig-proxy)
        target = int(first["pid"])

        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    log_writer = LogWriter(log) if log else None
    saved = None
    if interactive and os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)  # (not the default TCSAFLUSH: keys typed ahead reach the container)
    try:
        sources = [master, 0] if interactive else [master]
        while True:
            ready, _, _ = select.select(sources, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every process inside closed the terminal
                    data = b""
                if not data:
                    break
                os.write(1, data)
                if log_writer:
                    log_writer.write("stdout", data)  # (a terminal has one stream)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(0)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        console.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if log_writer:
            log_writer.close()
    last = events.next()
    events.close()
    return int(last.get("exit_code", 125))


def cmd_ps(a: argparse.Namespace) -> int:
    from .container import select_containers
    from .tables import containers_table

    filters: dict[str, list[str]] = {}
    for item in a.filter or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise _usage(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    containers = select_containers(_store(), a.all, filters, 1 if a.latest else a.last)
    # As docker ps: a --format that uses .Size measures the sizes, as -s does
    sizes = a.size or ".Size" in (a.format or "")
    table = containers_table(containers, no_trunc=a.no_trunc, sizes=sizes)
    _print_table(table, a.format, "ID", a.quiet)
    return 0


def cmd_attach(a: argparse.Namespace) -> int:
    """``docker attach``: this terminal joins a running container's stdio, through its monitor (``attach.py``):
    its output from now on, and what is typed if it has ``-i``; with ``-t`` the terminal is raw and the
    detach keys (Ctrl-P Ctrl-Q) leave it running. Without ``-t``, Ctrl-C is passed on as a signal (sig-proxy).
    The exit code is the container's, once it ends."""
    import fcntl
    import select
    import termios
    import tty

    from . import attach
    from .container import get_container, kill, wait
    from .errors import PyContainersError

    container = get_container(_store(), a.container)
    attach.check_attachable(container.status, container.paused)
    try:
        detach = attach.DetachKeys(attach.parse_detach_keys(a.detach_keys))
    except ValueError as exc:
        raise _usage(str(exc)) from None
    spec = container.spec
    typing = spec.interactive and not a.no_stdin
    sock = attach.connect(container.dir, container.name)

    def send_window(*_: object) -> None:
        with contextlib.suppress(OSError):
            sock.send(attach.WINDOW + fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8))

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(PyContainersError):
            kill(container, signum)

    previous: dict[int, Any] = {}
    if spec.tty and os.isatty(1):
        send_window()
        previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, send_window)
    elif not spec.tty and a.sig_proxy:  # Ctrl-C is ours to pass on: the container has no terminal to type it in
        previous |= {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    saved = None
    if spec.tty and typing and os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)
    detached = False
    try:
        sources: list[Any] = [sock, 0] if typing else [sock]
        while not detached:
            try:
                ready, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if sock in ready:
                message = sock.recv(attach.MAX_MESSAGE)
                if not message:
                    break
                os.write(2 if message[:1] == attach.STDERR else 1, message[1:])
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    sources.remove(0)  # (the container's stdin stays open: others may still type)
                    continue
                data, detached = detach.feed(data)
                if data:
                    sock.send(attach.STDIN + data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if detached:
        print("read escape sequence", file=sys.stderr)  # (Docker's words, and its exit code)
        return 1
    return wait(container)


def cmd_logs(a: argparse.Namespace) -> int:
    """``docker logs``: the container's stdout to ours, its stderr to our stderr, in the order they came."""
    from .container import get_container, log_entries

    tail = None if a.tail == "all" else int(a.tail)  # (argparse checked it: see _add_logs)
    entries = log_entries(get_container(_store(), a.container), follow=a.follow, tail=tail, since=a.since,
                          until=a.until)
    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    last = None
    for entry in entries:
        out = outputs.get(entry.stream, sys.stdout.buffer)
        if last is not None and out is not last:
            last.flush()  # (the other stream's lines came first)
        out.write(f"{entry.time} ".encode() + entry.data if a.timestamps else entry.data)
        if a.follow:
            out.flush()
        last = out
    if last is not None:
        last.flush()
    return 0


def _each_container(names: list[str], action: Callable[[Any], None], echo: bool = True,
                    missing_ok: bool = False, parallel: bool = False) -> int:
    """*action* on each container named; its name printed when done, or its error. *parallel*: all at once,
    as Docker's CLI does ``stop``, ``kill``, ``rm``, ``pause`` (its ``parallelOperation``: ten containers
    that ignore SIGTERM stop in 10 s, not 100), the lines still in the order given."""
    import threading

    from .container import ContainerNotFound, get_container
    from .errors import PyContainersError

    store = _store()

    outcomes: list[BaseException | None] = [None] * len(names)

    def act(i: int) -> None:
        try:
            action(get_container(store, names[i]))
        except BaseException as exc:  # noqa: BLE001 (said or raised below, in the caller's thread)
            outcomes[i] = exc

    threads = []
    if parallel and len(names) > 1:
        threads = [threading.Thread(target=act, args=(i,), daemon=True) for i in range(len(names))]
        for thread in threads:
            thread.start()
    status = 0
    for i, name in enumerate(names):
        if threads:
            threads[i].join()
        else:
            act(i)
        exc = outcomes[i]
        if exc is None:
            if echo:
                print(name, flush=True)
        elif not isinstance(exc, PyContainersError):
            raise exc
        elif not (missing_ok and isinstance(exc, ContainerNotFound) and str(exc).startswith("No such container")):
            print(f"Error: {exc}", file=sys.stderr, flush=True)
            status = 1
    return status


def cmd_start(a: argparse.Namespace) -> int:
    """``docker start``: run a created or exited container again, on the same writable layer; with ``-a``,
    on this terminal, as ``run`` without ``-d`` (its exit code is ours)."""
    from .container import forward_signal, get_container
    from .runtime import is_external, start_in_background, start_locked

    if a.attach or a.interactive:
        if len(a.containers) > 1:
            raise _usage("you cannot start and attach multiple containers at once")
        container = get_container(_store(), a.containers[0])
        if container.status == "running":
            print(f"Error: container {container.name} is already running", file=sys.stderr)
            return 1
        tty = container.spec.tty
        if _no_terminal_to_read(tty, a.interactive):
            return 1
        return _attached(lambda stdio: start_locked(container, stdio), a.interactive, tty,
                         console_socket=not is_external(container), log=container.log_path(),
                         deliver=lambda pid, sig: forward_signal(container, pid, sig))

    return _each_container(a.containers, lambda c: _started(start_in_background(c)))


def _started(first: dict[str, Any] | None) -> None:
    """A container's first event after ``start`` or ``restart``: its error, if it could not start."""
    from .container import ContainerError

    if first is not None and first["event"] == "error":
        raise ContainerError(str(first["message"]), int(first["exit_code"]))


def cmd_restart(a: argparse.Namespace) -> int:
    from .runtime import restart

    return _each_container(a.containers, lambda c: _started(restart(c, a.time)))


def cmd_pause(a: argparse.Namespace) -> int:
    from .container import pause

    return _each_container(a.containers, pause, parallel=True)


def cmd_unpause(a: argparse.Namespace) -> int:
    from .container import unpause

    return _each_container(a.containers, unpause, parallel=True)


def cmd_stats(a: argparse.Namespace) -> int:
    """``docker stats``: CPU %, memory, network and block I/O, PIDs of containers, read from the kernel
    (``stats.py``) once a second; ``--no-stream``: one table (two readings a second apart, for CPU %)."""
    import time

    from . import stats
    from .container import ContainerNotFound, get_container, list_containers
    from .tables import Table

    store = _store()

    first = True

    def containers() -> list[Any]:
        if not a.containers:
            return [c for c in list_containers(store) if a.all or c.status == "running"]
        if first:  # a name that matches nothing is an error at once; one removed later leaves the table
            return [get_container(store, name) for name in a.containers]
        found = []
        for name in a.containers:
            with contextlib.suppress(ContainerNotFound):
                found.append(get_container(store, name))
        return found

    previous: dict[str, dict[str, Any]] = {}
    for c in containers():
        with contextlib.suppress(ContainerNotFound):
            previous[c.id] = stats.sample(c)
    explained = False
    while True:
        time.sleep(1.0)
        readings = []
        for c in containers():
            with contextlib.suppress(ContainerNotFound):  # removed meanwhile: gone from the table
                readings.append((c, stats.sample(c, previous.get(c.id))))
        previous, first = {c.id: r for c, r in readings}, False
        if a.containers and not readings:  # every container named has been removed: nothing left to watch
            for name in a.containers:
                print(f"Error: No such container: {name}", file=sys.stderr)
            return 1
        table = Table(list(stats.HEADERS), [stats.row(r, c, a.no_trunc) for c, r in readings],
                      headers=dict(stats.HEADERS))
        if not a.no_stream and sys.stdout.isatty():
            print("\033[2J\033[H", end="")  # clear the screen, as docker stats redraws its table
        _print_table(table, a.format)
        sys.stdout.flush()
        if not explained:
            for sentence in stats.summed_from_processes([r for _, r in readings]):
                print(sentence, file=sys.stderr)
            explained = True
        if a.no_stream:
            return 0


def cmd_rename(a: argparse.Namespace) -> int:
    from .container import get_container, rename

    rename(get_container(_store(), a.container), a.new_name)
    return 0


def cmd_stop(a: argparse.Namespace) -> int:
    from .container import parse_signal, stop

    sig = parse_signal(a.signal) if a.signal else None
    return _each_container(a.containers, lambda c: stop(c, a.time, sig), parallel=True)


def cmd_kill(a: argparse.Namespace) -> int:
    from .container import kill, parse_signal

    sig = parse_signal(a.signal)  # (Invalid signal: X, in one line)
    return _each_container(a.containers, lambda c: kill(c, sig), parallel=True)


def cmd_rm(a: argparse.Namespace) -> int:
    from .container import remove

    # as docker rm -f: a container that is not there is nothing to do, not an error
    return _each_container(a.containers, lambda c: remove(c, force=a.force, volumes=a.volumes), missing_ok=a.force,
                           parallel=True)


def cmd_wait(a: argparse.Namespace) -> int:
    from .container import wait

    return _each_container(a.containers, lambda c: print(wait(c)), echo=False)


def _dockerfile_path(given: str | None, context: str) -> str:
    """``-f`` as Docker's CLI reads it: relative to the current directory, not to the context
    (``docker build -f app/Dockerfile.dev app``); a path that names a file only inside the context still works."""
    if not given:
        return "Dockerfile"
    if os.path.isabs(given) or (not os.path.exists(given) and os.path.exists(os.path.join(context, given))):
        return given
    return os.path.abspath(given)


def cmd_build(a: argparse.Namespace) -> int:
    from .build import build, context_from_stream, dockerfile_from_stream, transcript_line

    build_args = {}
    for item in a.build_arg or []:
        key, eq, value = item.partition("=")
        if not eq:
            value = os.environ.get(key, "")
        build_args[key] = value

    mid_line = [False]  # the last RUN output ended without a newline

    def show(event: dict[str, Any]) -> None:
        if a.quiet:
            return
        if event["type"] == "output":  # as it comes, as Docker's: a chunk may end mid-line ("W" + ": Failed")
            sys.stdout.write(event["text"])
            sys.stdout.flush()
            if event["text"]:
                mid_line[0] = not event["text"].endswith("\n")
            return
        line = transcript_line(event)
        if line is not None:
            print(("\n" if mid_line[0] else "") + line, flush=True)
            mid_line[0] = False

    with contextlib.ExitStack() as stdin_files:
        context, dockerfile = a.context, _dockerfile_path(a.file, a.context)
        if a.context == "-":  # the context (a tar archive), or only a Dockerfile, on standard input
            if a.file == "-":
                raise _usage("can't use stdin for both the build context and the Dockerfile")
            context = str(stdin_files.enter_context(context_from_stream(sys.stdin.buffer.read())))
            dockerfile = a.file or "Dockerfile"
        elif a.file == "-":
            dockerfile = stdin_files.enter_context(dockerfile_from_stream(sys.stdin.buffer.read()))
        result = build(_store(), context, dockerfile=dockerfile, tags=a.tag or [], build_args=build_args,
                       target=a.target, no_cache=a.no_cache, network=a.network, on_event=show)
    if a.quiet:
        print(result.image.id)
    return 0


def cmd_exec(a: argparse.Namespace) -> int:
    from .container import forward_signal, get_container
    from .runtime import exec_detached, exec_start
    from .spec import parse_env

    if not a.command:  # (its command is the rest of the line, which argparse cannot require)
        raise _UsageError(_wanted_sentence("pycontainers exec", 2, math.inf), exit_code=1)
    if not a.detach and _no_terminal_to_read(a.tty, a.interactive):
        return 1
    container = get_container(_store(), a.container)
    if _not_running(container):
        return 1
    env = parse_env(a.env or [])  # (-e KEY alone takes this shell's value, as run's)
    if a.detach:  # (Docker's exec -d: nothing to show, nothing to wait for)
        exec_detached(container, a.command, env=env, workdir=a.workdir, user=a.user)
        return 0
    return _attached(lambda stdio: exec_start(container, a.command, stdio, env=env, workdir=a.workdir,
                                              user=a.user, tty=a.tty), a.interactive, a.tty,
                     deliver=lambda pid, sig: forward_signal(container, pid, sig, exec_=True))


def cmd_top(a: argparse.Namespace) -> int:
    from .container import get_container, top
    from .tables import Table

    container = get_container(_store(), a.container)
    if _not_running(container):
        return 1
    rows = top(container)
    _print_table(Table(["UID", "PID", "PPID", "CMD"], rows), None)
    return 0


def cmd_bundle(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .bundle import export_bundle
    from .image import get_image
    from .spec import make_spec

    store = _store()
    image = get_image(store, a.image)
    spec = make_spec(image, a.image, a.command or None, hostname=a.hostname or "pycontainers",
                     volumes_dir=str(store.home / "volumes"), with_image_volumes=False)
    dest = export_bundle(store, image, spec, Path(a.directory))
    print(f"{dest}: config.json and rootfs/ (try: runc run --bundle {dest} my-container)")
    return 0


def cmd_vm_run(a: argparse.Namespace) -> int:
    """``vm run IMAGE CMD...``: the same image booted as a virtual machine with its own kernel."""
    from . import vm

    result = vm.run(_store(), a.image, a.command or ["true"], timeout=a.timeout, accel=a.accel)
    sys.stdout.write(result.output)
    if a.timings:
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
        print(f"[{result.accel}] kernel {result.kernel_release}, guest uptime {result.guest_uptime:.2f}s; "
              f"{phases}", file=sys.stderr)
    return result.exit_code


def cmd_diff(a: argparse.Namespace) -> int:
    from .container import diff, get_container

    for kind, path in diff(get_container(_store(), a.container)):
        print(f"{kind} {path}")
    return 0


def cmd_commit(a: argparse.Namespace) -> int:
    from .container import commit, get_container

    image = commit(get_container(_store(), a.container), a.repository, message=a.message or "",
                   author=a.author or "")
    print(image.id)
    return 0


def cmd_cp(a: argparse.Namespace) -> int:
    """``docker cp``: one side is ``CONTAINER:PATH``, the other a local path or ``-`` (a tar on stdin/stdout)."""
    from . import cp
    from .container import get_container

    if not a.src:
        raise cp.CopyError("source can not be empty")
    if not a.dest:
        raise cp.CopyError("destination can not be empty")
    (src_container, src), (dest_container, dest) = cp.split_cp_arg(a.src), cp.split_cp_arg(a.dest)
    if src_container and dest_container:
        raise cp.CopyError("copying between containers is not supported")
    if not src_container and not dest_container:
        raise cp.CopyError("must specify at least one container source")
    quiet = a.quiet or not sys.stderr.isatty()  # Docker: the summary only when stderr (where it goes) is a terminal
    store = _store()
    if src_container:
        container = get_container(store, src_container)
        if dest == "-":
            cp.get_archive(container, src, sys.stdout.buffer, follow_link=a.follow_link)
            return 0
        size, transferred, shown = cp.copy_from_container(container, src, dest, follow_link=a.follow_link)
    else:
        container = get_container(store, dest_container)
        if src == "-":
            cp.put_archive(container, dest, sys.stdin.buffer, archive=a.archive)
            return 0
        size, transferred = cp.copy_to_container(container, src, dest, archive=a.archive, follow_link=a.follow_link)
        shown = f"{dest_container}:{dest}"
    if not quiet:
        print(cp.copy_summary(size, transferred, shown), file=sys.stderr)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from . import cp
    from .container import get_container
    from .errors import InvalidArgument

    container = get_container(_store(), a.container)
    if not a.output:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        cp.export(container, sys.stdout.buffer)
        return 0
    tmp = a.output + ".partial"
    try:
        with open(tmp, "wb") as f:
            cp.export(container, f)
        os.replace(tmp, a.output)
    except OSError as exc:
        raise _file_error(f"failed to export container: cannot write {a.output}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    """``docker import``: a one-layer image from a tar file (or ``-``); prints its ID."""
    from . import cp
    from .errors import InvalidArgument

    if a.file.startswith(("http://", "https://")):
        raise InvalidArgument(f"{a.file}: pycontainers imports a file or - (stdin), not a URL: download it first")
    store = _store()
    if a.file == "-":
        if sys.stdin.isatty():
            raise InvalidArgument("requested import from stdin, but stdin is a terminal: pipe a tar archive in")
        image = cp.import_image(store, sys.stdin.buffer, a.repository, changes=a.change or [], message=a.message or "")
    else:
        try:
            f = open(a.file, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise _file_error(f"open {a.file}: {exc.strerror}") from None
        with f:
            image = cp.import_image(store, f, a.repository, changes=a.change or [], message=a.message or "",
                                    source=a.file)
    print(image.id)
    return 0


def cmd_volume(a: argparse.Namespace) -> int:
    from . import container as c

    store = _store()
    if a.action == "create":
        print(c.volume_create(store, a.name))
    elif a.action == "ls":
        names = c.volume_list(store)
        if a.quiet:
            print("\n".join(names)) if names else None
        else:
            from .tables import Table

            _print_table(Table(["Driver", "Name"], [{"Driver": "local", "Name": n} for n in names],
                               headers={"Driver": "DRIVER", "Name": "VOLUME NAME"}), None)
    elif a.action == "rm":
        for name in a.names:
            try:
                c.volume_remove(store, name, force=a.force)
            except c.ContainerNotFound:
                if not a.force:  # -f: a volume that is not there is nothing to do (as docker's)
                    raise
                continue
            print(name)
    elif a.action == "prune":
        what = "all local volumes" if a.all else "anonymous local volumes"
        if not _confirm(f"{what} not used by at least one container", a.force):
            return 0
        removed = c.volume_prune(store, all_volumes=a.all)
        print("Deleted Volumes:\n" + "".join(f"{name}\n" for name in removed) if removed else "", end="")
        print(f"\nTotal reclaimed volumes: {len(removed)}")
    elif a.action == "inspect":
        return _print_inspected(a.names, [lambda name: c.volume_inspect(store, name)], a.format, "volume")
    return 0


def cmd_network(a: argparse.Namespace) -> int:
    from . import network
    from .api import network_inspect, network_names
    from .errors import PyContainersError

    store = _store()
    if a.action == "create":
        print(network.create_network(store, a.name, a.subnet).id)
    elif a.action == "ls":
        from .tables import Table

        docs = [network_inspect(store, name) for name in network_names(store)]
        rows = [{"ID": d["Id"] if a.no_trunc else d["Id"][:12], "Name": d["Name"], "Driver": d["Driver"],
                 "Scope": "local"} for d in docs]
        _print_table(Table(["ID", "Name", "Driver", "Scope"], rows,
                           headers={"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"}),
                     a.format, "ID", a.quiet)
    elif a.action == "rm":
        status = 0
        for name in a.names:
            try:
                print(network.remove_network(store, name))
            except PyContainersError as exc:
                print(f"Error: {exc}", file=sys.stderr)
                status = 1
        return status
    elif a.action == "inspect":
        return _print_inspected(a.names, [lambda name: network_inspect(store, name)], a.format, "network")
    elif a.action in ("connect", "disconnect"):
        from .container import get_container

        try:  # (Docker's words: its errors come from the daemon)
            container = get_container(store, a.container)
            if a.action == "connect":
                network.connect(store, container, a.network, a.alias, a.ip)
            else:
                network.disconnect(store, container, a.network, a.force)
        except PyContainersError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            return 1
    elif a.action == "prune":
        if not _confirm("all custom networks not used by at least one container", a.force):
            return 0
        removed = network.prune_networks(store)
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in removed) if removed else "", end="")
    return 0


def cmd_compose(a: argparse.Namespace) -> int:
    """``compose``: a multi-container application from its compose file (pycontainers/compose.py)."""
    from . import compose

    store = _store()
    project = compose.load(a.file, a.project_name)
    if a.subcommand == "config":
        print(json.dumps({"name": project.name, "services": {
            name: {"image": s.image, "container_name": s.container_name, "command": s.command,
                   "depends_on": s.depends_on, "network": s.network,
                   **({"more_networks": s.more_networks} if s.more_networks else {}), **s.options}
            for name, s in project.services.items()}, "networks": project.networks, "volumes": project.volumes},
            indent=2))
    elif a.subcommand == "build":
        compose.build(store, project, a.services, say=_say_now)
    elif a.subcommand == "up":
        from .logs import timestamp

        began = timestamp()  # (attached: what the containers print from now on, not what they printed before)
        started = compose.up(store, project, a.services, build=a.build, remove_orphans=a.remove_orphans,
                             say=_say_now)
        if not a.detach:
            return _compose_attached(project, started, began)
    elif a.subcommand == "down":
        compose.down(store, project, volumes=a.volumes, remove_orphans=a.remove_orphans, say=_say_now)
    elif a.subcommand == "ps":
        from .tables import Table, containers_table

        chosen = {svc.name for svc in compose.services_named(project, a.services)}
        mine = sorted((c for c in compose.project_containers(store, project.name)
                       if compose.service_of(c) in chosen and (a.all or c.status == "running")),
                      key=lambda c: c.name)  # (Compose's order: by name)
        rows = [{**row, "Service": compose.service_of(c) or "", "FullID": c.id}
                for c, row in zip(mine, containers_table(mine).rows, strict=True)]
        # Compose's columns: its COMMAND and CREATED too, as `docker compose ps` shows them; -q: full IDs
        _print_table(Table(["Names", "Image", "Command", "Service", "CreatedSince", "Status", "Ports"], rows,
                           headers={"Names": "NAME", "Image": "IMAGE", "Command": "COMMAND", "Service": "SERVICE",
                                    "CreatedSince": "CREATED", "Status": "STATUS", "Ports": "PORTS"}),
                     None, "FullID", a.quiet)
    elif a.subcommand == "logs":
        _print_compose_logs(compose.log_lines(store, project, a.services, follow=a.follow, timestamps=a.timestamps))
    elif a.subcommand == "stop":
        compose.stop(store, project, a.services, a.timeout, say=_say_now)
    elif a.subcommand == "start":
        compose.start(store, project, a.services, say=_say_now)
    elif a.subcommand == "restart":
        compose.restart(store, project, a.services, a.timeout, say=_say_now)
    elif a.subcommand == "kill":
        from .container import parse_signal

        compose.kill(store, project, a.services, parse_signal(a.signal), say=_say_now)
    elif a.subcommand == "exec":
        return _compose_exec(a, compose.exec_target(store, project, a.service, a.index))
    return 0


def _compose_exec(a: argparse.Namespace, container: Any) -> int:
    """``compose exec SERVICE COMMAND``: ``exec`` in the service's container. As Compose's, with stdin and a
    terminal when this one has them (``-T``: no terminal), none in a notebook's ``!`` (nobody types there)."""
    if not a.command:
        raise _usage("compose exec needs a command to run in the service's container")
    keyboard = os.isatty(0) and not os.environ.get("JPY_PARENT_PID") and not a.detach
    return cmd_exec(argparse.Namespace(container=container.id, command=a.command, interactive=keyboard,
                                       tty=keyboard and not a.no_tty, detach=a.detach, env=a.env,
                                       workdir=a.workdir, user=a.user))


def _say_now(line: str) -> None:
    """A line of compose's progress, flushed: into a pipe, "Waiting" must show while it waits, not after."""
    print(line, flush=True)


def _print_compose_logs(lines: Any) -> None:
    for prefix, stream, data in lines:
        out = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
        out.write(prefix.encode() + data + (b"" if data.endswith(b"\n") else b"\n"))
        out.flush()


def _compose_attached(project: Any, started: list[Any], since: str) -> int:
    """``compose up`` without -d: every container's output, prefixed, until all have stopped. Ctrl-C (or
    SIGTERM) stops them, SIGTERM first (``compose.stop_in_order``); a second Ctrl-C kills them, as Compose does."""
    import contextlib

    from .compose import merged_logs, stop_in_order
    from .container import kill
    from .errors import PyContainersError

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too, even where it was ignored on start (a job a script put in the background): as Compose's Go
    # runtime, whose signal.Notify takes the signal back
    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    print("Attaching to " + ", ".join(c.name for c in started), flush=True)  # (before the logs, into a pipe too)
    try:
        try:
            _print_compose_logs(merged_logs(started, follow=True, since=since))
        except KeyboardInterrupt:
            print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
            try:
                stop_in_order(project, [c.reload() for c in started], say=_say_now)
            except KeyboardInterrupt:
                for c in started:
                    with contextlib.suppress(PyContainersError):
                        kill(c.reload())
                print(" Containers killed", file=sys.stderr)
                return 130
            return 0  # stopped as asked: Compose's documented exit code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for c in started:
        c.reload()
        print(f"{c.name} exited with code {c.state.get('exit_code')}")
    return 0


def cmd_port(a: argparse.Namespace) -> int:
    """``port CONTAINER [PORT]``: where its published ports are reachable on this machine."""
    from .api import network_settings
    from .container import get_container

    ports = network_settings(get_container(_store(), a.container))["Ports"]
    wanted = None if a.port is None else (a.port if "/" in a.port else f"{a.port}/tcp")
    if wanted is not None and wanted not in ports:
        print(f"Error: No public port '{wanted}' published for {a.container}", file=sys.stderr)
        return 1
    for key, bindings in ports.items():
        if wanted in (None, key):
            for b in bindings or []:
                print(f"{b['HostIp']}:{b['HostPort']}" if wanted else f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0


def _confirm(what: str, force: bool) -> bool:
    """Docker's question before a prune; asked whatever stdin is (``echo n |`` says no), and an end of input
    is a no: only ``-f`` skips it."""
    if force:
        return True
    print(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        print()
    return answer.strip().lower() in ("y", "yes")


def cmd_container_prune(a: argparse.Namespace) -> int:
    from .api import prune_containers

    if not _confirm("all stopped containers", a.force):
        return 0
    result = prune_containers(_store())
    _print_section("Deleted Containers:", result["ContainersDeleted"])
    print("Total reclaimed space: 0B")
    return 0


def cmd_system_prune(a: argparse.Namespace) -> int:
    from . import container as c
    from .api import prune_build_cache, prune_containers, prune_images
    from .network import prune_networks
    from .units import human_size

    what = ("all stopped containers, all networks not used by at least one container, and all dangling images"
            if not a.all else
            "all stopped containers, all networks not used by at least one container, all images without at "
            "least one container associated to them, and all build cache")
    if a.volumes:
        what = what.replace("all stopped containers, ", "all stopped containers, all anonymous volumes not used "
                                                        "by at least one container, ")
    if not _confirm(what, a.force):
        return 0
    store = _store()
    containers = prune_containers(store)["ContainersDeleted"]
    volumes = c.volume_prune(store) if a.volumes else []  # (after the containers that used them)
    networks = prune_networks(store) if (store.home / "networks").is_dir() else []
    images = prune_images(store, all_images=a.all)
    cache = prune_build_cache(store) if a.all else {"CachesDeleted": [], "SpaceReclaimed": 0}
    _print_section("Deleted Containers:", containers)
    _print_section("Deleted Volumes:", volumes)
    _print_section("Deleted Networks:", networks)
    _print_section("Deleted Images:", _image_report_lines(images["ImagesDeleted"]))
    _print_cache_deleted(cache["CachesDeleted"])
    print(f"Total reclaimed space: {human_size(images['SpaceReclaimed'] + cache['SpaceReclaimed'])}")
    return 0


def cmd_builder_prune(a: argparse.Namespace) -> int:
    from .api import prune_build_cache
    from .units import human_size

    if not _confirm("all build cache", a.force):
        return 0
    cache = prune_build_cache(_store())
    _print_cache_deleted(cache["CachesDeleted"])
    print(f"Total reclaimed space: {human_size(cache['SpaceReclaimed'])}")
    return 0


def _print_section(title: str, lines: list[str]) -> None:
    """One part of Docker's prune report: a title, a line per thing removed, a blank line; nothing if none."""
    if lines:
        print(title)
        print("\n".join(lines))
        print()


def _image_report_lines(report: list[dict[str, str]]) -> list[str]:
    """Docker's lines for an image removal report: ``untagged: busybox:latest``, ``deleted: sha256:...``."""
    return [f"untagged: {line['Untagged']}" if "Untagged" in line else f"deleted: {line['Deleted']}"
            for line in report]


def _print_cache_deleted(steps: list[str]) -> None:
    _print_section("Deleted build cache objects:", [key.split(":", 1)[-1][:25] for key in steps])  # short keys


# ------------------------------------------------------------------------------------------- system


def cmd_system_df(a: argparse.Namespace) -> int:
    from .api import disk_usage
    from .tables import Table

    rows = disk_usage(_store())
    _print_table(Table(["Type", "TotalCount", "Active", "Size", "Reclaimable"], rows), a.format)
    return 0


def cmd_system_check(a: argparse.Namespace) -> int:
    store = _store()
    problems = store.check()
    for p in problems:
        print(p)
    n_blobs = sum(1 for _ in store.blobs.iterdir())
    n_refs = len(store.entries())
    if problems:
        print(f"{len(problems)} problem(s) in {store.home}", file=sys.stderr)
        return 1
    print(f"ok: {n_blobs} blobs and {n_refs} references verified in {store.home}")
    return 0


def cmd_system_bases(a: argparse.Namespace) -> int:
    from .bases import BASES, ensure_bases, ensure_wheelhouse

    names = tuple(a.names) or BASES
    outcome = ensure_bases(_store(), names, log=lambda m: print(f"    {m}", flush=True))
    if not a.names:  # everything the notebooks need offline: the wheels their images pip-install too
        outcome["wheelhouse"] = ensure_wheelhouse()
    for name, result in outcome.items():
        print(f"{name}: {result}")
    return 1 if any(result.startswith("not available") for result in outcome.values()) else 0


def cmd_version(a: argparse.Namespace) -> int:
    from . import __version__

    print(f"pycontainers version {__version__}")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    """Like ``docker info``: the engine, its store, this machine, and what it can do for containers."""
    from . import __version__, host
    from .image import list_images
    from .store import Store, default_home, describe_home

    caps = host.probe_all()
    backend, why = host.backend_choice()  # this machine's (probed once: caps), or what PYCONTAINERS_BACKEND says
    layout = host.cgroup_layout()
    home = default_home()
    try:
        images = str(len(list_images(Store(home))))
    except OSError as exc:
        images = f"unknown ({exc.strerror or exc})"
    print("Server:")
    print(" Engine: pycontainers")
    print(f" Server Version: {__version__}")
    print(f" Store: {describe_home(home)}")
    print(f" Images: {images}")
    print(f" Kernel Version: {os.uname().release}")
    print(f" Cgroup Driver: {'cgroupfs' if layout.version != 'none' else 'none'}")
    print(f" Cgroup Version: {layout.describe()}")
    print(f" Backend: {backend}")
    print(f"  {why}")
    print(" Capabilities:")
    for line in host.summary_lines(caps):
        print(f"  {line}")
    return 0


# ------------------------------------------------------------------------------------------- parser


class _UsageError(Exception):
    """A command line Docker's CLI would refuse: one line, and exit code 125 (a flag's error), or 1 where
    Docker's is 1 (too few arguments)."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _tail_value(text: str) -> str:
    """``logs --tail``: "all" or a number of lines."""
    if text == "all" or (text.isascii() and text.lstrip("-").isdigit() and int(text) < 0):
        return "all"  # (a negative number: all, as docker)
    if text.isascii() and text.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"invalid --tail value {text!r}: a number of lines, or all")


def _time_value(text: str) -> str:
    """``logs --since``/``--until``: a time or a duration back from now (``logs.parse_time``)."""
    from .logs import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _restart_policy(text: str) -> str:
    """``run --restart``: only "no", said in one sentence, since a policy needs something to outlive the command."""
    if text == "no":
        return text
    raise argparse.ArgumentTypeError(f"{text!r} needs a daemon to restart containers, and pycontainers has none: "
                                     "leave it out (or write no)")


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _file_error(message: str) -> Exception:
    """A file named on the command line that cannot be opened or written: ``Error: ...``, exit 1 (as docker)."""
    from .errors import PyContainersError

    return PyContainersError(message)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: Docker has none, and argparse's would take --mem for --memory, or say
        # "argument --pids-limit" of a --pid the user typed.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line and Docker's exit code for bad flags
        if message.startswith("the following arguments are required") and not self._subparsers:
            raise _UsageError(self._arguments_wanted(), exit_code=1)
        if self.prog == "pycontainers" and (typo := re.match(r"argument COMMAND: invalid choice: '(.*?)'", message)):
            raise _UsageError(f"'{typo[1]}' is not a pycontainers command.\nSee 'pycontainers --help'", exit_code=1)
        raise _UsageError(f"{self.prog.removeprefix('pycontainers').strip() or 'usage'}: {message}")

    def _arguments_wanted(self) -> str:
        """Docker's sentence for too few arguments (its ``RequiresMinArgs``, ``ExactArgs``,
        ``RequiresRangeArgs``): "'docker run' requires at least 1 argument.", rather than argparse's list of
        names, which would call a container's optional command required."""
        low, high = 0, 0.0
        for action in self._actions:
            if action.option_strings:
                continue
            n = action.nargs
            if n is None or isinstance(n, int):
                low, high = low + (n or 1), high + (n or 1)
            elif n == "?":
                high += 1
            else:  # *, +, ...
                low, high = low + (n == "+"), math.inf
        return _wanted_sentence(self.prog, low, high)


def _wanted_sentence(prog: str, low: int, high: float) -> str:
    noun = "argument" if low == 1 else "arguments"
    wanted = (f"exactly {low} {noun}" if low == high else f"at least {low} {noun}" if high == math.inf
              else f"at least {low} and at most {high:.0f} arguments")
    return f"'{prog}' requires {wanted}.\nSee '{prog} --help'."


def _add_images_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", help="only images of this repository[:tag]")
    p.add_argument("-a", "--all", action="store_true", help="show all images (also untagged ones)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("--digests", action="store_true", help="show the digests registries know the images by")
    p.add_argument("-f", "--filter", action="append", help="dangling=true|false")
    p.add_argument("--format", help="Go-template-like format, e.g. 'table {{.Repository}}\\t{{.Size}}'")
    p.set_defaults(func=cmd_images)


def _add_history_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-H", "--human", type=lambda v: v.lower() != "false", default=True,
                   help="print sizes in human-readable form (default true)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--format", help="Go-template-like format")
    p.set_defaults(func=cmd_history)


def _add_images(sub: argparse._SubParsersAction) -> None:
    _add_images_flags(sub.add_parser("images", help="list images"))


def _add_history(sub: argparse._SubParsersAction) -> None:
    _add_history_flags(sub.add_parser("history", help="show the history of an image"))


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="low-level information on containers, images, networks or volumes")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", help="a Go template such as '{{.State.Status}}' or '{{json .Config}}'")
    p.add_argument("--type", choices=["container", "image", "network", "volume"], help="look for this kind only")
    p.set_defaults(func=cmd_inspect)


def _add_tag(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="create a tag TARGET that refers to SOURCE")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=cmd_tag)


def _add_pull(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="download an image from a registry (NAME[:TAG|@DIGEST])")
    p.add_argument("name")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image's full name")
    p.set_defaults(func=cmd_pull)


def _add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload an image to a registry (NAME[:TAG]; tag it with that name first)")
    p.add_argument("name")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_push)


def _add_rmi(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rmi", help="remove one or more images")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="remove an image with several tags by ID")
    p.add_argument("--no-prune", action="store_true", help="do not delete unreferenced blobs")
    p.set_defaults(func=cmd_rmi)


def _add_save(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("save", help="save images to a tar archive (docker save / OCI layout)")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", help="write to a file instead of standard output")
    p.add_argument("--format", choices=["docker", "oci"], default="docker",
                   help="docker: OCI layout plus Docker's manifest.json (as Docker 25+); oci: OCI only")
    p.set_defaults(func=cmd_save)


def _add_load(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="load images from a tar archive")
    p.add_argument("-i", "--input", help="read from a file instead of standard input")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_load)


def _command_group(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """A command made of subcommands (``image ls``, ``system prune``...), one of which must be given."""
    group = sub.add_parser(name, help=help_text).add_subparsers(dest="subcommand", metavar="COMMAND",
                                                               parser_class=_Parser)
    group.required = True
    return group


def _add_image(sub: argparse._SubParsersAction) -> None:
    image = _command_group(sub, "image", "manage images")
    _add_images_flags(image.add_parser("ls", aliases=["list"], help="list images"))
    _add_history_flags(image.add_parser("history", help="show the history of an image"))
    for name, src in (("inspect", "inspect"), ("tag", "tag"), ("rm", "rmi"), ("save", "save"),
                      ("load", "load"), ("pull", "pull"), ("push", "push"), ("import", "import")):
        parent = sub.choices[src]
        p = image.add_parser(name, aliases=["remove"] if name == "rm" else [], help=parent.description or src)
        for action in parent._actions[1:]:
            p._add_action(action)
        p.set_defaults(func=parent.get_default("func"))
    p = image.add_parser("prune", help="remove dangling images")
    p.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_image_prune)


def _add_builder(sub: argparse._SubParsersAction) -> None:
    builder = _command_group(sub, "builder", "manage the build cache")
    p = builder.add_parser("prune", help="remove the build cache (every cached step)")
    p.add_argument("-a", "--all", action="store_true", help="(the whole cache is removed in any case)")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_builder_prune)


def _add_system(sub: argparse._SubParsersAction) -> None:
    system = _command_group(sub, "system", "manage pycontainers")
    p = system.add_parser("prune", help="remove stopped containers and dangling images")
    p.add_argument("-a", "--all", action="store_true",
                   help="remove all unused images, not just dangling, and the build cache")
    p.add_argument("--volumes", action="store_true", help="also remove the volumes no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_system_prune)
    p = system.add_parser("df", help="show disk usage")
    p.add_argument("--format")
    p.set_defaults(func=cmd_system_df)
    p = system.add_parser("check", help="verify every blob and reference in the store (fsck)")
    p.set_defaults(func=cmd_system_check)
    p = system.add_parser("bases", help="make the offline base images (busybox, debian, python) and wheelhouse")
    p.add_argument("names", nargs="*", help="only these (busybox, debian:bookworm-slim, python:3.11-slim)")
    p.set_defaults(func=cmd_system_bases)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="create and run a new container from an image")
    _container_options(p)
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print its ID")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("create", help="create a new container (start runs it)")
    _container_options(p)
    p.set_defaults(func=cmd_create)


def _container_options(p: argparse.ArgumentParser) -> None:
    """What ``run`` and ``create`` share: the image, the command and how the container is made."""
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--name")
    p.add_argument("-l", "--label", action="append", metavar="KEY[=VALUE]", help="set a label on the container")
    p.add_argument("-e", "--env", action="append", help="set an environment variable (K=V)")
    p.add_argument("--env-file", action="append", help="read environment variables from a file")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="USER[:GROUP] (name or number)")
    p.add_argument("-v", "--volume", action="append",
                   help="HOST:CONTAINER[:ro], VOLUME:CONTAINER[:ro], or CONTAINER (an anonymous volume)")
    p.add_argument("--hostname")
    p.add_argument("--entrypoint", help="overwrite the image's ENTRYPOINT")
    p.add_argument("--restart", type=_restart_policy, default="no", help="no (the only policy without a daemon)")
    p.add_argument("--read-only", action="store_true", help="mount the root file system read-only")
    p.add_argument("--init", action="store_true",
                   help="run an init (tini) as PID 1 that passes signals on (Ctrl-C) and reaps zombies")
    p.add_argument("-m", "--memory", help="memory limit (e.g. 64m)")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--cpus", type=float)
    p.add_argument("--network", "--net", help="none (only loopback: the default without -p), host, bridge "
                                               "(the default with -p) or a network's name (network create)")
    p.add_argument("--add-host", action="append", metavar="NAME:IP", help="a line of the container's /etc/hosts")
    p.add_argument("--network-alias", action="append", metavar="NAME",
                   help="another name the others on a user-defined network find this container by")
    p.add_argument("--ip", help="its IPv4 address on that network (one made with --subnet)")
    p.add_argument("-p", "--publish", action="append", metavar="[IP:][HOST_PORT:]PORT",
                   help="publish a container's TCP port on this machine (e.g. 8080:80)")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every port the image EXPOSEs, each on a free port of this machine")
    p.add_argument("--runtime", choices=["native", "rootless", "runc", "proot"],
                   help="native (default as root), rootless (user namespaces; default without root), "
                        "runc (from an OCI bundle) or proot (where user namespaces are forbidden)")
    p.add_argument("--health-cmd", metavar="COMMAND", help="command to run to check health (in a shell)")
    p.add_argument("--health-interval", metavar="DURATION", help="time between running the check (ms|s|m|h)")
    p.add_argument("--health-timeout", metavar="DURATION", help="maximum time to allow one check to run (ms|s|m|h)")
    p.add_argument("--health-retries", type=int, metavar="N", help="consecutive failures needed to report unhealthy")
    p.add_argument("--health-start-period", metavar="DURATION",
                   help="start period for the container to initialize before failures count (ms|s|m|h)")
    p.add_argument("--health-start-interval", metavar="DURATION",
                   help="time between running the check during the start period (ms|s|m|h)")
    p.add_argument("--no-healthcheck", action="store_true", help="disable any container-specified HEALTHCHECK")


def _add_ps(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format")
    p.add_argument("-f", "--filter", action="append",
                   help="KEY=VALUE: id, name, status (created, running, exited), ancestor (an image), exited (a code), "
                        "health (starting, healthy, unhealthy, none)")
    p.add_argument("-n", "--last", type=int, help="the N containers created last (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="the container created last (all states)")
    p.add_argument("-s", "--size", action="store_true",
                   help="what each container wrote (its writable layer) and, as virtual, that plus its image")
    p.set_defaults(func=cmd_ps)


def _add_attach(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attach", help="attach this terminal to a running container's input and output")
    p.add_argument("container")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--sig-proxy", type=_bool_flag, default=True, nargs="?", const=True, metavar="BOOL",
                   help="pass the signals this command gets on to the container (default true; not with -t)")
    p.add_argument("--detach-keys", default="ctrl-p,ctrl-q",
                   help="the keys that detach, leaving the container running (default ctrl-p,ctrl-q)")
    p.set_defaults(func=cmd_attach)


def _bool_flag(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _add_logs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="fetch the output of a container")
    p.add_argument("container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all", type=_tail_value, help="lines from the end (default: all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show when each line was logged")
    p.add_argument("--since", type=_time_value, help="lines logged since a time (2026-11-26T13:45:00Z, a Unix "
                   "time) or for a while (10m, 1h30m)")
    p.add_argument("--until", type=_time_value, help="lines logged before a time, or a while ago (as --since)")
    p.set_defaults(func=cmd_logs)


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("context", help="a directory, or - to read a tar archive of it (or a Dockerfile alone) from stdin")
    p.add_argument("-t", "--tag", action="append", help="name[:tag] for the result (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; -: from stdin)")
    p.add_argument("--build-arg", action="append", help="K=V for an ARG")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--network", default="none", choices=["none", "host"], help="network for RUN steps")
    p.add_argument("--progress", default="plain", choices=["plain", "auto"], help="accepted; output is plain")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.set_defaults(func=cmd_build)


def _add_exec(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-e", "--env", action="append")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.set_defaults(func=cmd_exec)


def _add_bundle(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="export an image as an OCI runtime bundle (config.json + rootfs) for runc")
    p.add_argument("image")
    p.add_argument("directory")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.add_argument("--hostname")
    p.set_defaults(func=cmd_bundle)


def _add_top(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="show the processes of a container")
    p.add_argument("container")
    p.set_defaults(func=cmd_top)


def _add_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="show what a container changed in its file system (A/C/D)")
    p.add_argument("container")
    p.set_defaults(func=cmd_diff)


def _add_commit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("commit", help="create a new image from a container's changes")
    p.add_argument("container")
    p.add_argument("repository", nargs="?")
    p.add_argument("-m", "--message")
    p.add_argument("-a", "--author")
    p.set_defaults(func=cmd_commit)


def _add_cp(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cp", help="copy files/folders between a container and the local filesystem "
                                  "(CONTAINER:SRC_PATH DEST_PATH|-, or SRC_PATH|- CONTAINER:DEST_PATH)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("-a", "--archive", action="store_true",
                   help="archive mode (keep the source's uid/gid when copying to a container)")
    p.add_argument("-L", "--follow-link", action="store_true", help="always follow a symbolic link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no summary line (the default when stdout is not a terminal)")
    p.set_defaults(func=cmd_cp)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a container's file system as a tar archive")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to a file instead of standard output")
    p.set_defaults(func=cmd_export)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="create an image from a tarball (FILE or -)")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", help="apply a Dockerfile instruction to the image "
                                                            "(CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, ...)")
    p.add_argument("-m", "--message", help="the commit message of the imported image")
    p.set_defaults(func=cmd_import)


def _add_containers_command(sub: argparse._SubParsersAction, verb: str, func: Handler,
                            helptext: str) -> argparse.ArgumentParser:
    p = sub.add_parser(verb, help=helptext)
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=func)
    return p


def _add_start(sub: argparse._SubParsersAction) -> None:
    p = _add_containers_command(sub, "start", cmd_start, "start stopped containers (in the background)")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, wait, exit with its code")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin too")


def _add_stop(sub: argparse._SubParsersAction) -> None:
    p = _add_containers_command(sub, "stop", cmd_stop, "stop running containers")
    p.add_argument("-t", "--time", type=float, default=10.0,
                   help="seconds to wait before killing (-1: for as long as it takes)")
    p.add_argument("-s", "--signal", help="the signal to send first (default: the image's STOPSIGNAL, or SIGTERM)")


def _add_kill(sub: argparse._SubParsersAction) -> None:
    p = _add_containers_command(sub, "kill", cmd_kill, "kill running containers")
    p.add_argument("-s", "--signal", default="KILL")


def _add_rm(sub: argparse._SubParsersAction) -> None:
    p = _add_containers_command(sub, "rm", cmd_rm, "remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")


def _add_wait(sub: argparse._SubParsersAction) -> None:
    _add_containers_command(sub, "wait", cmd_wait, "block until containers stop, print exit codes")


def _add_restart(sub: argparse._SubParsersAction) -> None:
    p = _add_containers_command(sub, "restart", cmd_restart, "stop, then start containers again")
    p.add_argument("-t", "--time", type=float, default=10.0,
                   help="seconds to wait before killing (-1: for as long as it takes)")


def _add_pause(sub: argparse._SubParsersAction) -> None:
    _add_containers_command(sub, "pause", cmd_pause, "freeze every process of containers (cgroup freezer)")


def _add_unpause(sub: argparse._SubParsersAction) -> None:
    _add_containers_command(sub, "unpause", cmd_unpause, "thaw the processes of paused containers")


def _add_rename(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func=cmd_rename)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="show containers' resource use (CPU, memory, network, block I/O, PIDs)")
    p.add_argument("containers", nargs="*")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: the running ones)")
    p.add_argument("--no-stream", action="store_true", help="one table, then exit")
    p.add_argument("--no-trunc", action="store_true", help="full container IDs")
    p.add_argument("--format", help="Go template, e.g. 'table {{.Name}}\\t{{.MemUsage}}'")
    p.set_defaults(func=cmd_stats)


def _add_container(sub: argparse._SubParsersAction) -> None:
    container = _command_group(sub, "container", "manage containers")
    aliases = {"ls": ["list", "ps"], "rm": ["remove"]}  # Docker's: docker container list, docker container ps
    for name, src in (("ls", "ps"), ("run", "run"), ("create", "create"), ("logs", "logs"), ("attach", "attach"),
                      ("start", "start"),
                      ("stop", "stop"), ("kill", "kill"),
                      ("rm", "rm"), ("wait", "wait"), ("diff", "diff"), ("commit", "commit"), ("exec", "exec"),
                      ("cp", "cp"), ("export", "export"), ("port", "port"),
                      ("top", "top"), ("inspect", "inspect"), ("restart", "restart"), ("pause", "pause"),
                      ("unpause", "unpause"), ("rename", "rename"), ("stats", "stats")):
        parent = sub.choices[src]
        p = container.add_parser(name, aliases=aliases.get(name, []), help=src)
        for action in parent._actions[1:]:
            p._add_action(action)
        p.set_defaults(func=parent.get_default("func"))
    p = container.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_container_prune)


def _add_vm(sub: argparse._SubParsersAction) -> None:
    vmp = _command_group(sub, "vm", "boot an image as a small virtual machine (QEMU)")
    p = vmp.add_parser("run", help="boot IMAGE in a microVM, run CMD, power off")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before the VM is killed")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    p.add_argument("--timings", action="store_true", help="print the boot phases on stderr")
    p.set_defaults(func=cmd_vm_run)


def _add_volume(sub: argparse._SubParsersAction) -> None:
    volume = _command_group(sub, "volume", "manage volumes")
    p = volume.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_volume, action="create")
    p = volume.add_parser("ls", aliases=["list"], help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_volume, action="ls")
    p = volume.add_parser("rm", aliases=["remove"], help="remove volumes")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_volume, action="rm")
    p = volume.add_parser("prune", help="remove the anonymous volumes no container uses")
    p.add_argument("-a", "--all", action="store_true", help="named volumes too, not only anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_volume, action="prune")
    p = volume.add_parser("inspect", help="show a volume's details")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", help="a Go template such as '{{.Name}}'")
    p.set_defaults(func=cmd_volume, action="inspect")


def _add_network(sub: argparse._SubParsersAction) -> None:
    group = _command_group(sub, "network", "manage networks (bridges that containers join)")
    p = group.add_parser("create", help="create a network")
    p.add_argument("name")
    p.add_argument("--subnet", help="its IPv4 subnet in CIDR form (default: a free 10.89.N.0/24)")
    p.add_argument("-d", "--driver", choices=["bridge"], default="bridge")
    p.set_defaults(func=cmd_network, action="create")
    p = group.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format", help="a Go template, as docker's: {{.ID}} {{.Name}} {{.Driver}} {{.Scope}}")
    p.add_argument("--no-trunc", action="store_true")
    p.set_defaults(func=cmd_network, action="ls")
    p = group.add_parser("rm", aliases=["remove"], help="remove networks (none may have containers)")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_network, action="rm")
    p = group.add_parser("inspect", help="show a network's details")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", help="a Go template such as '{{.Name}}'")
    p.set_defaults(func=cmd_network, action="inspect")
    p = group.add_parser("prune", help="remove the networks no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_network, action="prune")
    p = group.add_parser("connect", help="connect a container to one more network (at once if it runs)")
    p.add_argument("--alias", action="append", metavar="NAME", help="another name it is found by on that network")
    p.add_argument("--ip", help="its IPv4 address there (default: the first free one)")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_network, action="connect")
    p = group.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="even if the network's record has gone")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_network, action="disconnect")


def _add_compose(sub: argparse._SubParsersAction) -> None:
    parent = sub.add_parser("compose", help="run a multi-container application from compose.yaml")
    parent.add_argument("-f", "--file", help="the compose file (default: compose.yaml here, or docker-compose.yml)")
    parent.add_argument("-p", "--project-name", help="the project's name (default: the file's directory's)")
    group = parent.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)
    group.required = True
    p = group.add_parser("up", help="create and start the services' containers")
    p.add_argument("-d", "--detach", action="store_true", help="start them in the background and return")
    p.add_argument("--build", action="store_true", help="build the images first, even if they exist")
    p.add_argument("--remove-orphans", action="store_true", help="remove containers of services no longer in the file")
    p.add_argument("services", nargs="*")
    p = group.add_parser("down", help="stop and remove the containers and networks")
    p.add_argument("-v", "--volumes", action="store_true", help="remove the named volumes and anonymous ones too")
    p.add_argument("--remove-orphans", action="store_true")
    p = group.add_parser("ps", help="list the project's containers")
    p.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("services", nargs="*")
    p = group.add_parser("logs", help="the services' output, each line with its container's name")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("services", nargs="*")
    p = group.add_parser("build", help="build the images of services that have a build section")
    p.add_argument("services", nargs="*")
    group.add_parser("config", help="show the project as pycontainers understood the file")
    for name, what in (("stop", "stop the services' containers (kept: start them again)"),
                       ("restart", "stop the services' containers and start them again")):
        p = group.add_parser(name, help=what)
        p.add_argument("-t", "--timeout", type=float, default=10.0, help="seconds to wait before killing")
        p.add_argument("services", nargs="*")
    p = group.add_parser("start", help="start the services' existing containers")
    p.add_argument("services", nargs="*")
    p = group.add_parser("kill", help="send a signal to the services' running containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("services", nargs="*")
    p = group.add_parser("exec", help="run a command in a service's running container")
    p.add_argument("service")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true", help="no terminal, even on one")
    p.add_argument("-e", "--env", action="append")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--index", type=int, default=1, help="which of the service's containers (1: the first)")
    parent.set_defaults(func=cmd_compose)


def _add_port(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("port", help="list a container's published ports")
    p.add_argument("container")
    p.add_argument("port", nargs="?", help="PORT[/tcp]: only where this one is published")
    p.set_defaults(func=cmd_port)


def _add_registry(sub: argparse._SubParsersAction) -> None:
    group = _command_group(sub, "registry", "run a registry on this machine (to push to and pull from)")
    p = group.add_parser("serve", help="run Docker's registry on 127.0.0.1 until Ctrl-C")
    p.add_argument("-p", "--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000, as Docker's)")
    p.add_argument("--dir", help="where it keeps what is pushed (default: registry/ in the store)")
    p.set_defaults(func=cmd_registry_serve)


def _add_version(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="show the version")
    p.set_defaults(func=cmd_version)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show the engine, its store and what this machine can do for containers")
    p.set_defaults(func=cmd_info)


# Every top-level command, in the order of --help. image and container borrow the flags of others.
_SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "images": _add_images, "history": _add_history, "inspect": _add_inspect, "tag": _add_tag, "rmi": _add_rmi,
    "save": _add_save, "load": _add_load, "import": _add_import, "pull": _add_pull, "push": _add_push,
    "image": _add_image,
    "system": _add_system, "run": _add_run,
    "ps": _add_ps, "logs": _add_logs, "attach": _add_attach, "build": _add_build, "exec": _add_exec,
    "bundle": _add_bundle,
    "top": _add_top, "diff": _add_diff, "commit": _add_commit, "start": _add_start, "stop": _add_stop,
    "kill": _add_kill, "rm": _add_rm, "wait": _add_wait, "cp": _add_cp, "export": _add_export,
    "restart": _add_restart, "pause": _add_pause, "unpause": _add_unpause, "rename": _add_rename, "stats": _add_stats,
    "port": _add_port, "container": _add_container, "vm": _add_vm,
    "volume": _add_volume, "network": _add_network, "compose": _add_compose,
    "registry": _add_registry, "builder": _add_builder, "version": _add_version,
    "info": _add_info,
}
_BORROWERS = ("image", "container")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; given a *command* (``run``, ``ps``...), one that knows only that command.

    argparse takes ~30 ms to build all ~60 subcommands (gettext alone is called ~180 times), and a command
    needs only its own parser. Usage errors and ``-h`` of a command come from that parser, so they read
    the same either way.
    """
    parser = _Parser(prog="pycontainers", description="A small, real container engine for teaching.")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, add in _SUBCOMMANDS.items():
        if command is None or name == command:
            add(sub)
    return parser


# Docker commands pycontainers leaves out on purpose, each with the sentence that says why and what to use.
_NOT_HERE = {
    "login": "login: not needed; the course's registry (pycontainers registry serve) takes pushes and pulls "
             "without one",
    "logout": "logout: there is no login; the course's registry takes pushes and pulls without one",
    "search": "search: Docker Hub is out of reach, this course works offline (pycontainers images lists this "
              "store's images; pycontainers system bases makes busybox, debian and python)",
}


def _lone_command(argv: Sequence[str]) -> str | None:
    """The command *argv* starts with, if its parser alone can parse *argv*; else None (the whole parser:
    for ``--help``, no or an unknown command, and the groups that borrow other commands' flags)."""
    if argv and argv[0] in _SUBCOMMANDS and argv[0] not in _BORROWERS:
        return argv[0]
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``timeout``, a closed terminal) ends a command as Ctrl-C does: the clean-up that an
    interrupted build, load or pull does (its step's container, its temporary files) runs for them too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _ending_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated`` while a command runs (where they have their default action, in
    the main thread: a command that passes them on to a container sets its own handler meanwhile)."""
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in _NOT_HERE:
        print(f"pycontainers: {_NOT_HERE[argv[0]]}", file=sys.stderr)
        return 1
    with _ending_like_ctrl_c():
        return _main(argv)


def _main(argv: list[str]) -> int:
    from .errors import PyContainersError

    try:
        parser = build_parser(_lone_command(argv))
        args, extra = parser.parse_known_args(argv)
        if extra:  # (Docker's words: "unknown flag: --mem")
            sub = getattr(args, "subcommand", None)  # (args.command may be run's: the container's command)
            where = " ".join(w for w in (argv[0] if argv and argv[0] in _SUBCOMMANDS else None, sub)
                             if isinstance(w, str))
            flag = next((word for word in extra if word.startswith("-")), None)
            raise _UsageError(f"{where or 'usage'}: " + (f"unknown flag: {flag}" if flag else
                                                          f"unexpected argument: {extra[0]}"))
        if args.version:
            return cmd_version(args)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return args.func(args)
    except _UsageError as exc:
        print(f"pycontainers: {exc}", file=sys.stderr)
        return exc.exit_code
    except (PyContainersError, ValueError) as exc:
        from .gotemplate import TemplateError

        # Docker's CLI says "template parsing error: " before a --format's error, parsing or running it
        print(f"{'template parsing error' if isinstance(exc, TemplateError) else 'Error'}: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt as exc:  # 130 after Ctrl-C, 128 + N after signal N, as a shell reports a kill
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug of ours: one line in front of a class, the traceback on request
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            where = f": {exc.filename}" if exc.filename else " (writing the output)"  # (save > /dev/full)
            print(f"Error: {exc.strerror}{where}", file=sys.stderr)
            return 1
        if os.environ.get("PYCONTAINERS_DEBUG"):
            raise
        print(f"pycontainers: internal error: {type(exc).__name__}: {exc} "
              "(run with PYCONTAINERS_DEBUG=1 to see where)", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
