"""The one exception family of pycontainers.

Every error a user can cause (a wrong image name, a broken layer, a store that was tampered with) is a
``PyContainersError`` whose message is one line naming the problem and where it is. The CLI prints that
line and exits with ``exit_code`` (125 like Docker for engine errors); notebooks show it without a
traceback.

The Python API's errors have docker-py's names and meanings (``docker.errors``)::

    PyContainersError
    ├── APIError                  the engine refused or failed a request (docker-py: the daemon said so)
    │   ├── NotFound              no such image, container or volume
    │   │   ├── ImageNotFound
    │   │   ├── ContainerNotFound
    │   │   └── NetworkNotFound
    │   ├── NetworkError          a network could not be made, joined or removed (names the device and call)
    │   └── EngineError           a container could not be started, is not running, is running... (Docker's
    │       │                     409/500 answers); ``pycontainers.container.ContainerError`` is this class
    │       └── ContainerTimeout  ``wait(timeout=...)`` ran out of time
    ├── ContainerError            docker-py's: ``run()``'s command exited non-zero (``exit_status``, ``stderr``)
    │   └── ContainerStartError   ... because it could not even start (also an ``APIError``, as in docker-py)
    └── InvalidArgument, StoreError, LayerError, SeccompError, ArchiveError
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import Any


class PyContainersError(Exception):
    """Base class: one clear line, and the exit code the CLI should use."""

    exit_code = 1


class InvalidArgument(PyContainersError):
    """A flag, a size or a path given by the user does not make sense."""


class APIError(PyContainersError):
    """docker-py's ``APIError``: the engine could not do what was asked. ``status_code`` is the HTTP status
    Docker's daemon would have answered with; ``explanation`` the message."""

    status_code = 500

    @property
    def explanation(self) -> str:
        return str(self)

    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600


class NotFound(APIError):
    """docker-py's ``NotFound``: no such image, container or volume."""

    status_code = 404


class ImageNotFound(NotFound):
    """No image in the store matches the name or ID."""


class ContainerNotFound(NotFound):
    """No container matches the name or ID (or, for volumes, no volume has the name)."""


class NetworkNotFound(NotFound):
    """No network matches the name or ID."""


class NetworkError(APIError):
    """A network could not be made, joined or removed: names the network, the device and the kernel's
    answer (the netlink request that failed)."""

    exit_code = 125


class EngineError(APIError):
    """The engine could not do what was asked of a container: create or start it, signal one that is not
    running, remove one that is... (exit code 125/126/127 like Docker). Not docker-py's ``ContainerError``,
    which is about a command that ran and failed."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ContainerTimeout(EngineError):
    """``wait(timeout=...)`` timed out with the container still running (docker-py raises requests'
    ``ReadTimeout`` there: a timed-out HTTP request)."""


class ContainerError(PyContainersError):
    """docker-py's ``ContainerError``: the command exited non-zero (its stderr is in the message)."""

    def __init__(self, container: Any, exit_status: int, command: list[str] | str | None, image: str,
                 stderr: bytes | None) -> None:
        self.container, self.exit_status, self.command, self.image, self.stderr = (
            container, exit_status, command, image, stderr)
        detail = (stderr or b"").decode(errors="replace").strip().splitlines()
        super().__init__(f"Command {command!r} in image {image!r} returned non-zero exit status {exit_status}"
                         + (f": {detail[-1]}" if detail else ""))
        self.exit_code = exit_status


class ContainerStartError(ContainerError, APIError):
    """The container could not start (no such executable: 127, not executable: 126, ...). docker-py raises
    an ``APIError`` there; this is both that and, as before, a ``ContainerError`` with ``exit_status``."""

    status_code = 400


class StoreError(PyContainersError):
    """The store on disk is missing something or holds something that does not match its digest."""


class LayerError(PyContainersError):
    """A layer archive is malformed or unsafe (path traversal, symlink escape, absurd size, ...)."""


class SeccompError(PyContainersError):
    """libseccomp refused the profile, or the kernel refused the filter; names the call that failed."""


class ArchiveError(PyContainersError):
    """A saved image archive (docker save / OCI layout) is malformed or lies about its content."""
