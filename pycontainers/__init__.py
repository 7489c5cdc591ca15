"""pycontainers: a compact, real container engine for teaching.

The Python API is shaped like docker-py::

    import pycontainers
    client = pycontainers.from_env()
    client.images.list()
    try:
        client.containers.get("web")
    except pycontainers.errors.NotFound:
        ...

Submodules import lazily, so ``import pycontainers`` stays fast for the CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

    from .api import Client


def from_env() -> Client:
    """A client for the store in ``$PYCONTAINERS_HOME`` (default ``~/.local/share/pycontainers``)."""
    from .api import Client

    return Client()


_SUBMODULES = {"api", "errors"}
"""Reachable as attributes without an import of their own, as docker-py's ``docker.errors.NotFound``."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name in {"Client", "ImageBuilder", "Store", "PyContainersError"}:
        from . import api, errors, image, store

        return {"Client": api.Client, "ImageBuilder": image.ImageBuilder, "Store": store.Store,
                "PyContainersError": errors.PyContainersError}[name]
    raise AttributeError(name)
