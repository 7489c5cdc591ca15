"""The rows behind ``images``, ``image history`` and ``system df``, shared by the CLI and the notebook
views so both show the same columns with the same values.

Field names are Docker's ``--format`` names (``{{.Repository}}``, ``{{.ID}}``, ``{{.CreatedBy}}``), and
``Table.format`` and ``format_document`` run Go templates on them with :mod:`.gotemplate`, as Docker does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from .gotemplate import DOCKER_FUNCS, DOCKER_HEADER_FUNCS, Template, go_json, go_text
from .image import Image
from .units import human_size, since

__all__ = ["HEADERS", "Table", "containers_table", "format_document", "go_json", "go_text", "history_table",
           "images_table", "repo_digests", "truncate"]

HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "CreatedBy": "CREATED BY",
    "Comment": "COMMENT", "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
    "Reclaimable": "RECLAIMABLE", "Layer": "LAYER",
}


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra_fields: tuple[str, ...] = ()  # fields --format may use that are not shown as columns
    methods: list[dict[str, Any]] = field(default_factory=list)  # each row's Go methods (``{{.Label "k"}}``)

    def header(self, column: str) -> str:
        return self.headers.get(column) or HEADERS.get(column, column.upper())

    def plain(self) -> str:
        """Columns padded like Docker's tabwriter (three spaces between columns)."""
        cells = [[self.header(c) for c in self.columns]]
        cells += [[row.get(c, "") for c in self.columns] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
        return "\n".join(lines)

    def format(self, template: str) -> str:
        """Docker's ``--format``: a Go template (:mod:`.gotemplate`, with Docker's functions) run on each row.

        As Docker's formatter: ``\\t`` and ``\\n`` typed in the shell are a tab and a newline; ``json`` is
        ``{{json .}}``; a leading ``table`` adds a header line, made by running the same template on the
        column names (with ``lower``, ``join``... leaving them as they are, so ``table {{lower .Names}}`` is
        still headed NAMES), and aligns tab-separated columns; ``table`` alone is the default columns."""
        template = template.replace("\\t", "\t").replace("\\n", "\n")
        if template.strip() == "json":  # (Docker 23's --format json)
            template = "{{json .}}"
        is_table = template.startswith("table")
        template = template.removeprefix("table").strip(" ") if is_table else template.strip(" ")
        if is_table and not template:
            return self.plain()
        compiled = Template(template, funcs=DOCKER_FUNCS)
        known = frozenset([*self.columns, *self.extra_fields])
        # a field no row has fails as Docker's does on its row struct (can't evaluate field Nope)
        lines = [compiled.execute(_Row(row, known, self.methods[n] if n < len(self.methods) else {}),
                                  missing_key="field") for n, row in enumerate(self.rows)]
        if is_table:
            header = compiled.execute(_Headers(self), funcs=DOCKER_HEADER_FUNCS)
            if "\t" in template:  # align tab-separated columns like tabwriter
                grid = [header.split("\t")] + [line.split("\t") for line in lines]
                widths = [max(len(r[i]) if i < len(r) else 0 for r in grid) for i in range(len(grid[0]))]
                return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip()
                                 for r in grid)
            lines = [header, *lines]
        return "\n".join(lines)


class _Row(dict[str, Any]):
    """A table row as a template sees it: the columns and extra fields it lacks are empty, as Docker's
    context methods return "" for them; any other name is missing."""

    def __init__(self, row: dict[str, str], known: frozenset[str], methods: dict[str, Any]) -> None:
        super().__init__(row)
        self.known, self.go_methods = known, methods

    def __missing__(self, key: str) -> str:
        if key in self.known:
            return ""
        raise KeyError(key)


class _Headers(dict[str, Any]):
    """What a ``table`` format's header line is made from: every field name gives its column header."""

    def __init__(self, table: Table) -> None:
        super().__init__()
        self.table = table
        self.go_methods = {name: _header_method(name.upper()) for name in
                           (table.methods[0] if table.methods else {})}  # (``{{.Label "k"}}`` heads LABEL)

    def __missing__(self, key: str) -> str:
        return self.table.header(key)


def format_document(doc: Any, template: str) -> str:
    """``inspect --format``: a Go template (:mod:`.gotemplate`, with Docker's functions) run on the JSON
    document: ``{{.State.Status}}``, ``{{json .Config}}``, ``{{range .NetworkSettings.Networks}}...{{end}}``.

    A missing key fails (``map has no entry for key "Nope"``), as Docker's inspect does (it runs the template on
    the raw document with Go's ``missingkey=error``), rather than printing ``<no value>``; ``\\t`` and ``\\n``
    typed in the shell are a tab and a newline."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    return Template(template, funcs=DOCKER_FUNCS).execute(doc, missing_key="error")


def images_table(images: list[Image], *, no_trunc: bool = False, digests: bool = False,
                 repository: str | None = None) -> Table:
    """``docker images``: one row per tag (``<none>`` for untagged images), newest first.

    With *repository* (``busybox`` or ``busybox:1.35.0``) only the matching tags get rows."""
    from .api import tag_matches
    from .errors import PyContainersError
    from .reference import parse

    cols = ["Repository", "Tag", *(["Digest"] if digests else []), "ID", "CreatedSince", "Size"]
    rows = []
    known = repo_digests(images[0].store) if images else {}
    readable, damaged = [], []
    for img in images:
        try:
            readable.append((img.created, img.id, img.size, img))
        except PyContainersError:  # a blob of it missing or corrupt: listed as such, the others still are
            damaged.append(img)
    for created, config_id, size, img in sorted(readable, key=lambda r: (r[0], r[1]), reverse=True):
        common = {"ID": config_id if no_trunc else img.short_id, "CreatedSince": since(created),
                  "Size": human_size(size), "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")}
        # Untagged but pulled by digest: a row per repository, its tag <none> (as Docker's CLI shows RepoDigests)
        pinned = sorted(f"{repo}:<none>" for repo, here in known if here == img.manifest_digest)
        tags = img.familiar_tags or pinned or ["<none>:<none>"]
        if repository:
            tags = [f for f, t in zip(img.familiar_tags, img.tags, strict=True) if tag_matches(t, repository)]
            wanted = parse(repository, default_tag=None)
            if wanted.tag is None and not img.familiar_tags:
                tags += [f for f in pinned if f.rpartition(":")[0] == wanted.familiar_name]
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            # As Docker's: the digest a registry knows this repository's image by (pushed or pulled), if any
            rows.append({"Repository": repo, "Tag": t, "Digest": known.get((repo, img.manifest_digest), "<none>"),
                         **common})
    for img in damaged:  # (rmi NAME removes one; system check says what is wrong)
        for tag in img.familiar_tags or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append({"Repository": repo, "Tag": t, "Digest": "<none>", "ID": "<damaged>", "CreatedSince": "",
                         "Size": "", "CreatedAt": ""})
    rows.sort(key=lambda r: (r["Repository"] == "<none>", r["Repository"], r["Tag"]))
    return Table(cols, rows)


def repo_digests(store: Any) -> dict[tuple[str, str], str]:
    """(familiar repository, manifest digest here) -> the registry's digest of it (``Store.repo_digests``)."""
    from .reference import parse

    return {(parse(key).familiar_name, here): key.rpartition("@")[2] for key, here in store.repo_digests().items()}


def truncate(text: str, width: int = 45) -> str:
    """Docker cuts CREATED BY at 45 characters unless --no-trunc."""
    return text if len(text) <= width else text[: width - 3] + "..."


def history_table(image: Image, *, no_trunc: bool = False, human: bool = True) -> Table:
    """``docker image history``: one row per build step, newest first."""
    from .build import step_images

    ids = step_images(image.store, image.id)
    rows = []
    for n, step in enumerate(image.history()):
        ident = "<missing>"
        known = step.image_id or (ids[n] if n < len(ids) else None)
        if known:
            ident = known if no_trunc else known.split(":", 1)[1][:12]
        rows.append({
            "ID": ident,
            "CreatedSince": since(step.created),
            "CreatedAt": step.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "CreatedBy": step.created_by if no_trunc else truncate(step.created_by),
            "Size": human_size(step.size) if human else str(step.size),
            "Comment": step.comment,
        })
    # -H=false: Docker's other table, the time itself (RFC 3339) where "56 years ago" was, sizes in bytes
    table = Table(["ID", "CreatedSince" if human else "CreatedAt", "CreatedBy", "Size", "Comment"], rows)
    table.headers.update({"ID": "IMAGE", "CreatedAt": "CREATED AT"})
    return table


def _header_method(header: str) -> Any:
    return lambda _key: header


def _label_method(labels: dict[str, str]) -> Any:
    """Docker's ``ContainerContext.Label``: ``{{.Label "com.docker.compose.service"}}``, "" if it has none."""
    return lambda key: labels.get(key, "")


def containers_table(containers: list, *, no_trunc: bool = False,  # list[container.Container]
                     sizes: bool = False) -> Table:
    """``docker ps``: CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS, PORTS, NAMES; with *sizes* (``-s``) SIZE,
    what the container wrote (its writable layer) and, as "virtual", that plus its image: copy-on-write in
    numbers."""
    from datetime import datetime

    from .container import writable_layer_size
    from .errors import PyContainersError
    from .image import ImageNotFound, get_image

    image_sizes: dict[str, int] = {}
    named: dict[str, str | None] = {}  # image name -> the ID it names now

    def image_column(spec: Any) -> str:
        """The image's name as given, or its ID once that name means another image (re-tagged, removed), as
        Docker's ``ps`` shows it: the name no longer says what the container runs."""
        if spec.image_name not in named:
            try:
                named[spec.image_name] = get_image(c.store, spec.image_name).id
            except ImageNotFound:
                named[spec.image_name] = None
            except PyContainersError:  # not a reference at all ("<build step 2>"): shown as it is
                named[spec.image_name] = spec.image_id
        if named[spec.image_name] == spec.image_id or not spec.image_id:
            return str(spec.image_name)
        return spec.image_id if no_trunc else spec.image_id.removeprefix("sha256:")[:12]

    rows, methods = [], []
    for c in containers:
        spec = c.spec
        command = " ".join(spec.args)
        labels = c.state.get("labels") or {}
        networks = sorted(c.state.get("networks") or {}) or ([spec.network] if spec.network in ("host", "none") else [])
        created = datetime.strptime(c.state["created"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        rows.append({
            "ID": c.id if no_trunc else c.short_id,
            "Image": image_column(spec),
            "Command": f'"{command if no_trunc else truncate(command, 20)}"',
            "CreatedSince": since(created),
            "RunningFor": since(created),  # Docker's name for the CREATED column in ps --format
            "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
            "Status": c.status_text(),
            "Ports": ", ".join(f"{ip}:{hp}->{cp}/tcp" for ip, hp, cp in c.state.get("ports") or [])
                     if c.status == "running" else "",
            "Names": c.name,
            "State": c.docker_status,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Networks": ",".join(networks),
            # Docker's: a volume's name, or a bind mount's host path, cut at 15 characters unless --no-trunc
            "Mounts": ",".join(name if no_trunc else ellipsis(name, 15)
                               for name in (m.volume or m.source for m in spec.mounts)),
            "LocalVolumes": str(sum(1 for m in spec.mounts if m.volume)),
        })
        if sizes:
            if spec.image_id not in image_sizes:
                try:
                    image_sizes[spec.image_id] = get_image(c.store, spec.image_id).size
                except ImageNotFound:  # (removed with rmi -f: its layers may be gone too)
                    image_sizes[spec.image_id] = 0
            rw = writable_layer_size(c)
            virtual = rw + image_sizes[spec.image_id]
            rows[-1]["Size"] = f"{human_size(rw)} (virtual {human_size(virtual)})" if virtual else human_size(rw)
        methods.append({"Label": _label_method(labels)})
    table = Table(["ID", "Image", "Command", "CreatedSince", "Status", "Ports", "Names", *(["Size"] if sizes else [])],
                  rows, extra_fields=("State", "Labels", "Networks", "Mounts", "LocalVolumes"), methods=methods)
    table.headers.update({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "Status": "STATUS",
                          "Ports": "PORTS", "Names": "NAMES", "RunningFor": "CREATED", "Mounts": "MOUNTS",
                          "LocalVolumes": "LOCAL VOLUMES"})
    return table


def ellipsis(text: str, width: int) -> str:
    """Docker's ``formatter.Ellipsis``: at most *width* characters, the last of them "…" when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"
