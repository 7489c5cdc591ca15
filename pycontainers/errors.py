"""The one exception family of pycontainers.

Every error a user can cause (a wrong image name, a broken layer, a store that was tampered with) is a
``PyContainersError`` whose message is one line naming the problem and where it is. The CLI prints that
line and exits with ``exit_code`` (125 like Docker for engine errors); notebooks show it without a
traceback.
"""

from __future__ import annotations


class PyContainersError(Exception):
    """Base class: one clear line, and the exit code the CLI should use."""

    exit_code = 1


class InvalidArgument(PyContainersError):
    """A flag, a size or a path given by the user does not make sense."""


class ImageNotFound(PyContainersError):
    """No image in the store matches the name or ID."""


class StoreError(PyContainersError):
    """The store on disk is missing something or holds something that does not match its digest."""


class LayerError(PyContainersError):
    """A layer archive is malformed or unsafe (path traversal, symlink escape, absurd size, ...)."""


class SeccompError(PyContainersError):
    """libseccomp refused the profile, or the kernel refused the filter; names the call that failed."""


class ArchiveError(PyContainersError):
    """A saved image archive (docker save / OCI layout) is malformed or lies about its content."""
