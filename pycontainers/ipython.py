"""``%%dockerfile``: a notebook cell that is a Dockerfile, built as soon as the cell runs.

    %load_ext pycontainers.ipython

    %%dockerfile -t hello_world_cmd:first -f Dockerfile_cmd
    FROM busybox
    ENTRYPOINT ["/bin/echo", "Hello"]
    CMD ["world"]

is ``docker build -t hello_world_cmd:first -f Dockerfile_cmd .`` with the Dockerfile typed into the cell:

* The cell is written to ``contexts/<name>/<file>``, relative to the notebook's working directory (the folder
  the notebook is in), and that folder is the *build context*: put the files a ``COPY`` needs there. ``<name>``
  is the tag's repository (``hello_world_cmd``; ``me/app`` becomes ``me_app``), or ``untagged`` without ``-t``.
  The folder is created if missing. ``--context DIR`` builds in another folder instead.
* Options, as ``docker build`` spells them: ``-t/--tag NAME[:TAG]`` (repeatable), ``-f/--file NAME`` (default
  ``Dockerfile``), ``--context DIR``, ``--build-arg KEY=VALUE`` (repeatable; ``KEY`` alone takes the value from
  the environment, or is left out if unset), ``--no-cache``, ``--target STAGE``.
* The classic transcript is printed while the build goes, and the ``BuildResult`` is left in the notebook's
  namespace as ``_build`` (``_build.image``, ``_build.steps``) for ``pycontainers.buildviews``. The cell itself
  returns nothing.
* A build that fails (a broken Dockerfile, a ``RUN`` that exits non-zero, a missing file) prints one line,
  ``Error: Dockerfile_cmd:3: ...``, instead of a traceback, and sets ``_build`` to None.

The store is the one ``pycontainers.from_env()`` uses (``$PYCONTAINERS_HOME``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import PyContainersError
from .reference import InvalidReference, parse

CONTEXTS = Path("contexts")  # default build contexts live here, relative to the working directory


def context_for(tags: list[str]) -> Path:
    """``contexts/<repository>``: the default build context for a cell tagged *tags* (the first tag counts)."""
    if not tags:
        return CONTEXTS / "untagged"
    return CONTEXTS / parse(tags[0]).familiar_name.replace("/", "_")


def build_args(items: list[str]) -> dict[str, str]:
    """``--build-arg K=V`` pairs; ``K`` alone takes its value from the environment, as docker build does."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if eq:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


@magics_class
class DockerfileMagics(Magics):
    @magic_arguments()
    @argument("-t", "--tag", action="append", default=[], help="name and optionally a tag, NAME[:TAG]")
    @argument("-f", "--file", default="Dockerfile", help="the Dockerfile's name in the context (default: Dockerfile)")
    @argument("--context", default=None, help="the build context (default: contexts/<name of the tag>)")
    @argument("--build-arg", action="append", default=[], dest="build_arg", help="a build-time variable, KEY=VALUE")
    @argument("--no-cache", action="store_true", dest="no_cache", help="do not use the build cache")
    @argument("--target", default=None, help="the build stage to build")
    @cell_magic
    def dockerfile(self, line: str, cell: str) -> None:
        """Write this cell as a Dockerfile into a build context and build it (see ``pycontainers.ipython``)."""
        options = parse_argstring(self.dockerfile, line)
        self.shell.user_ns["_build"] = None
        try:
            self.shell.user_ns["_build"] = run_build(cell, options)
        except (PyContainersError, InvalidReference, OSError) as exc:
            print(f"Error: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            # The stop button: the build cleaned up after itself. The interrupt goes on (so that "Run All" stops
            # here, as after any stopped cell), saying so in one sentence, without the engine's frames.
            raise KeyboardInterrupt("Build stopped: nothing was tagged, and the steps it finished are in the "
                                    "build cache (run the cell again to go on from there).") from None


def run_build(cell: str, options: Any) -> Any:
    """Write *cell* into the context *options* name, build it with the transcript on stdout, return the result."""
    from . import from_env
    from .build import build, transcript_line

    tags = list(options.tag)
    context = Path(options.context) if options.context else context_for(tags)
    dockerfile = context / options.file
    dockerfile.parent.mkdir(parents=True, exist_ok=True)
    dockerfile.write_text(cell if cell.endswith("\n") else cell + "\n")
    print(f"Wrote {dockerfile}", flush=True)

    def show(event: dict[str, Any]) -> None:
        text = transcript_line(event)
        if text is not None:
            print(text, flush=True)

    return build(from_env().store, context, dockerfile=options.file, tags=tags,
                 build_args=build_args(options.build_arg), target=options.target, no_cache=options.no_cache,
                 on_event=show)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext pycontainers.ipython``: register ``%%dockerfile``."""
    ip.register_magics(DockerfileMagics)


__all__ = ["DockerfileMagics", "build_args", "context_for", "load_ipython_extension", "run_build"]
