"""Notebook views: HTML tables, the layer graph and the layer explorer, drawn from what the core returns.

This is the only module of pycontainers that touches IPython-world libraries (graphviz, ipywidgets), and
it imports them inside the functions that need them, so ``import pycontainers.views`` stays cheap and works
without them (the self-checking exercises import the numbers from here). Nothing is recomputed here that
the core already knows: tables come from ``pycontainers.tables`` (the same rows the CLI prints), and
per-layer facts come from ``Image.inspect_layers()``. The few numbers the core does not have (wasted bytes
in total, the efficiency score, bytes saved by sharing layers) are each computed in exactly one place below.
"""

from __future__ import annotations

import functools
import html
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import oci
from .image import FileRecord, Image, LayerReport
from .layer import clean_path, describe
from .tables import Table, history_table, images_table, truncate
from .units import human_size

if TYPE_CHECKING:
    import graphviz
    import ipywidgets

    from . import api

# Columns whose cells are numbers or sizes: right-aligned, so digits line up as in a terminal.
NUMERIC_COLUMNS = frozenset({"Layer", "Size", "Added", "Modified", "Deleted", "Wasted", "TotalCount", "Active"})

TABLE_STYLE = "border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:12px"
CELL_STYLE = "padding:2px 10px;border-bottom:1px solid #ddd;white-space:nowrap"


def _core(image: Image | api.Image) -> Image:
    """Accept the API's ``Image`` (``client.images.get``) as well as the core one (``builder.commit``)."""
    return image.core if hasattr(image, "core") else image  # type: ignore[union-attr]


def _name(image: Image) -> str:
    return ", ".join(image.familiar_tags) or image.short_id


def short_digest(digest: str) -> str:
    """12 hex digits, as ``docker pull`` prints layers (``da7391352a9b: Pull complete``)."""
    return oci.short_id(digest)


# ------------------------------------------------------------------------------------------- tables


def table_html(table: Table, *, columns: Sequence[str] | None = None, caption: str | None = None,
               max_rows: int | None = None) -> str:
    """A ``tables.Table`` as a small HTML table; every cell is escaped (tags and commands are user text).

    *columns* picks and orders a subset (e.g. leave out CREATED, whose "56 years ago" drifts with time);
    *max_rows* cuts long tables (a base layer adds thousands of files) and says how many rows were left out.
    """
    cols = list(columns) if columns is not None else table.columns
    rows = table.rows if max_rows is None else table.rows[:max_rows]

    def cell(tag: str, column: str, text: str) -> str:
        align = "right" if column in NUMERIC_COLUMNS else "left"
        return f'<{tag} style="{CELL_STYLE};text-align:{align}">{html.escape(text)}</{tag}>'

    out = [f'<table class="pycontainers-table" style="{TABLE_STYLE}">']
    if caption:
        out.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>')
    out.append("<thead><tr>" + "".join(cell("th", c, table.header(c)) for c in cols) + "</tr></thead>")
    out.append("<tbody>")
    out += ["<tr>" + "".join(cell("td", c, row.get(c, "")) for c in cols) + "</tr>" for row in rows]
    left_out = len(table.rows) - len(rows)
    if left_out:
        out.append(f'<tr><td colspan="{len(cols)}" style="{CELL_STYLE};font-style:italic">'
                   f"… {left_out:,} more rows</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def images_html(images: Iterable[Image | api.Image]) -> str:
    """``docker images`` as HTML: the rows of ``tables.images_table``, so notebook and CLI agree."""
    return table_html(images_table([_core(i) for i in images]))


def layer_steps(image: Image | api.Image) -> list[str]:
    """The CREATED BY text of each layer, base first (history lines without a layer are skipped).

    Matched by position, not by digest: two steps can produce byte-identical layers (same digest).
    """
    img = _core(image)
    steps = [row.created_by for row in reversed(img.history()) if not row.empty_layer]
    return (steps + [""] * len(img.layers))[: len(img.layers)]


def layers_table(image: Image | api.Image, *, human: bool = True) -> Table:
    """One row per layer, base first: index, short digest, size, the step that made it. Cheap: no tar is read."""
    img = _core(image)
    rows = [{"Layer": str(i), "Digest": short_digest(d.digest), "Size": human_size(d.size) if human else str(d.size),
             "CreatedBy": truncate(step)}
            for i, (d, step) in enumerate(zip(img.layers, layer_steps(img), strict=True))]
    return Table(["Layer", "Digest", "Size", "CreatedBy"], rows)


def image_html(image: Image | api.Image) -> str:
    """One image: tags, short ID, size, its layers with sizes, and ``docker image history``."""
    img = _core(image)
    tags = ", ".join(img.familiar_tags) or "<none>"
    n = len(img.layers)
    head = (f"<div><b>{html.escape(tags)}</b> &nbsp; IMAGE ID <code>{html.escape(img.short_id)}</code> &nbsp; "
            f"SIZE {html.escape(human_size(img.size))} &nbsp; {n} layer{'s' if n != 1 else ''}</div>")
    history = history_table(img)
    return "\n".join([
        '<div class="pycontainers-image">', head,
        table_html(layers_table(img), caption="Layers (base first)"),
        table_html(history, columns=["ID", "CreatedBy", "Size", "Comment"], caption="History (newest first)"),
        "</div>",
    ])


# ------------------------------------------------------------------------------- waste and efficiency


@dataclass(frozen=True)
class Waste:
    """Bytes of file content an image stores but can never show: overwritten or deleted in a later layer.

    Every regular file a layer holds either survives into the image's file system or is hidden by a later
    layer (and then counted in some ``LayerReport.wasted``), so the content of all layers together is
    "bytes still visible" plus "bytes wasted".
    """

    content: int  # bytes of file content in all layers together
    wasted: int  # of those, bytes a later layer overwrote or deleted

    @property
    def efficiency(self) -> float:
        """dive's score: the share of stored file content a container can still see (1.0: nothing wasted)."""
        return 1.0 if self.content == 0 else 1.0 - self.wasted / self.content

    @classmethod
    def from_inspection(cls, fs: dict[str, FileRecord], reports: Sequence[LayerReport]) -> Waste:
        wasted = sum(r.wasted for r in reports)
        return cls(content=sum(rec.size for rec in fs.values()) + wasted, wasted=wasted)


def waste(image: Image | api.Image) -> Waste:
    """Wasted bytes and the content they are part of, from ``inspect_layers()``."""
    return Waste.from_inspection(*_core(image).inspect_layers())


def efficiency(image: Image | api.Image) -> float:
    """Like dive: 1 - wasted bytes / bytes of file content across all layers (1.0 is a tidy image)."""
    return waste(image).efficiency


def layer_sizes_table(image: Image | api.Image, *, human: bool = True) -> Table:
    """Per layer: index, short digest, size, step, and the files it added, modified, deleted and wasted.

    WASTED is what *this* layer stores that a later layer hid (the 5 MB an ``rm`` did not give back);
    ADDED/MODIFIED/DELETED count paths, as ``inspect_layers()`` reports them.
    """
    img = _core(image)
    _fs, reports = img.inspect_layers()
    table = layers_table(img, human=human)
    for row, report in zip(table.rows, reports, strict=True):
        row.update({"Added": str(len(report.added)), "Modified": str(len(report.modified)),
                    "Deleted": str(len(report.deleted)),
                    "Wasted": human_size(report.wasted) if human else str(report.wasted)})
    table.columns += ["Added", "Modified", "Deleted", "Wasted"]
    return table


def layer_changes_table(image: Image | api.Image, index: int,
                        reports: Sequence[LayerReport] | None = None) -> Table:
    """The paths one layer added, modified and deleted, with sizes.

    Added and modified sizes are this layer's own tar entries; a deleted path shows the size it had
    below. NOTE names the lower layer that still stores what was replaced or deleted: a whiteout or a new
    copy hides those bytes, it never removes them.
    """
    img = _core(image)
    if reports is None:
        reports = img.inspect_layers()[1]
    report = reports[index]
    own = {clean_path(m.name): m for m in img.layer_members(index)}
    lower = _lower_entries(img, index, {*report.modified, *report.deleted})
    rows = []
    for change, paths in (("added", report.added), ("modified", report.modified), ("deleted", report.deleted)):
        for path in paths:
            m = own.get(path) if change != "deleted" else None
            below = lower.get(path) if change != "added" else None
            note = ""
            if below is not None:  # what this change hid: still in the lower layer, byte for byte
                j, old = below
                what = human_size(old.size) if old.isreg() else describe(old)
                note = f"{'old copy' if change == 'modified' else 'its'} {what} still stored in layer {j}"
            shown = m if m is not None else (below[1] if below is not None else None)
            rows.append({"Change": change, "Path": "/" + path, "Kind": describe(shown) if shown else "",
                         "Size": human_size(shown.size) if shown is not None and shown.isreg() else "",
                         "Note": note})
    return Table(["Change", "Path", "Kind", "Size", "Note"], rows)


def _lower_entries(img: Image, index: int, paths: set[str]) -> dict[str, tuple[int, tarfile.TarInfo]]:
    """For each path, the newest tar entry below layer *index* that wrote it (what a whiteout hid)."""
    found: dict[str, tuple[int, tarfile.TarInfo]] = {}
    for j in range(index - 1, -1, -1):
        if len(found) == len(paths):
            break
        for m in img.layer_members(j):
            path = clean_path(m.name)
            if path in paths and path not in found:
                found[path] = (j, m)
    return found


# ------------------------------------------------------------------------------------------ sharing


@dataclass(frozen=True)
class Sharing:
    """The layers of several images, each counted once, as the store keeps them."""

    images: list[Image]
    layers: list[oci.Descriptor]  # distinct layers, in first-seen order (base first, image by image)
    users: dict[str, int]  # layer digest -> how many of the images use it

    @property
    def stored(self) -> int:
        """Bytes on disk: every distinct layer once (descriptor sizes, i.e. the blob sizes)."""
        return sum(d.size for d in self.layers)

    @property
    def unshared(self) -> int:
        """Bytes if each image had its own copy of every layer: the sum of the images' SIZE column."""
        return sum(i.size for i in self.images)

    @property
    def caption(self) -> str:
        n = len(self.layers)
        return (f"{n} layer{'s' if n != 1 else ''} stored once: {self.stored:,} bytes ({human_size(self.stored)})"
                f" on disk vs {self.unshared:,} bytes ({human_size(self.unshared)}) if every image had its own copy")


def layer_sharing(images: Iterable[Image | api.Image]) -> Sharing:
    """Which layers the images share; the same image given twice (two tags) counts once."""
    unique: dict[str, Image] = {}
    for image in images:
        img = _core(image)
        unique.setdefault(img.manifest_digest, img)
    layers: dict[str, oci.Descriptor] = {}
    users: dict[str, int] = {}
    for img in unique.values():
        for d in img.layers:
            layers.setdefault(d.digest, d)
        for digest in {d.digest for d in img.layers}:
            users[digest] = users.get(digest, 0) + 1
    return Sharing(list(unique.values()), list(layers.values()), users)


def layer_graph(images: Iterable[Image | api.Image], *, title: str | None = None) -> graphviz.Digraph:
    """Every distinct layer once, stacked base (bottom) to top, and each image pointing at its top layer.

    A layer used by several images is drawn once, green, with the number of images that share it, and the
    caption adds up the bytes. Node names are positions (``layer0``, ``image0``), so the drawing is the
    same on every run.
    """
    sharing = layer_sharing(images)
    label = f"<b>{html.escape(title)}</b><br/>" if title else ""
    label += f'<font point-size="10">{html.escape(sharing.caption)}</font>'
    g = named_digraph(
        "layer graph", f"{len(sharing.layers)} layers of {len(sharing.images)} images",
        graph_attr={"rankdir": "BT", "label": f"<{label}>", "labelloc": "t", "fontname": "Helvetica",
                    "nodesep": "0.25", "ranksep": "0.3"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded,filled",
                   "fillcolor": "#eeeeee", "color": "#888888"},
        edge_attr={"color": "#888888", "arrowsize": "0.6"},
    )
    ids = {d.digest: f"layer{i}" for i, d in enumerate(sharing.layers)}
    for d in sharing.layers:
        shared = sharing.users[d.digest]
        text = f"{short_digest(d.digest)}\n{human_size(d.size)}"
        if shared > 1:
            text += f"\nshared by {shared} images"
        g.node(ids[d.digest], text, fillcolor="#c7e9c0" if shared > 1 else "#eeeeee")
    edges: set[tuple[str, str]] = set()
    for img in sharing.images:
        chain = [ids[d.digest] for d in img.layers]
        for below, above in zip(chain, chain[1:], strict=False):
            if (below, above) not in edges and below != above:
                edges.add((below, above))
                g.edge(below, above)
    for k, img in enumerate(sharing.images):
        text = "\n".join(img.familiar_tags or ["<none>"]) + f"\nID {img.short_id}"
        g.node(f"image{k}", text, shape="box", style="filled", fillcolor="#cfe2f3", color="#3d6fa5")
        if img.layers:  # drawn as an arrow from the image down to its top layer
            g.edge(ids[img.layers[-1].digest], f"image{k}", dir="back", color="#3d6fa5")
    return g


def named_digraph(kind: str, name: str, **attrs: Any) -> graphviz.Digraph:
    """A ``graphviz.Digraph`` whose text form names the graph instead of a memory address.

    Jupyter stores an object's repr next to its picture; ``<Digraph at 0x7f...>`` would differ on every run
    (and leak into committed notebooks), ``<layer graph: 9 layers of 7 images>`` does not.
    """
    return _named_digraph_class()(name, comment=kind, **attrs)


@functools.cache
def _named_digraph_class() -> type[graphviz.Digraph]:
    import graphviz

    class NamedDigraph(graphviz.Digraph):
        def __repr__(self) -> str:
            return f"<{self.comment}: {self.name}>"

    return NamedDigraph


# ---------------------------------------------------------------------------------------- explorer


def layer_explorer(image: Image | api.Image, layer: int | None = None) -> ipywidgets.VBox:
    """Pick a layer, see what it added, changed and whited out; above, the image's waste and efficiency.

    Thin on purpose: the numbers are ``Waste`` and ``layer_changes_table``; the widget only wires a
    dropdown to them. *layer* is the one shown first (default: the top layer).
    """
    import ipywidgets as widgets

    img = _core(image)
    fs, reports = img.inspect_layers()
    w = Waste.from_inspection(fs, reports)
    steps = layer_steps(img)
    summary = widgets.HTML(
        f"<b>{html.escape(_name(img))}</b>: {len(reports)} layers, {html.escape(human_size(img.size))}. "
        f"Wasted: {w.wasted:,} of {w.content:,} bytes of file content "
        f"({html.escape(human_size(w.wasted))}); efficiency {w.efficiency:.1%}")
    options = [(f"{r.index}: {short_digest(r.digest)}  {human_size(r.size)}  {truncate(steps[r.index], 40)}",
                r.index) for r in reports]
    if not options:
        return widgets.VBox([summary])
    chosen = len(reports) - 1 if layer is None else layer
    dropdown = widgets.Dropdown(options=options, value=chosen, description="Layer",
                                layout=widgets.Layout(width="max-content"))
    detail = widgets.HTML()

    def show(_change: object = None) -> None:
        index = dropdown.value
        report = reports[index]
        detail.value = (f"<div>Layer {index} takes {report.size:,} bytes; {report.wasted:,} bytes of the file "
                        "content in it are hidden by later layers.</div>"
                        + table_html(layer_changes_table(img, index, reports), max_rows=200))

    dropdown.observe(show, names="value")
    show()
    return widgets.VBox([summary, dropdown, detail])


# ---------------------------------------------------------------------------------------- isolation


def namespace_inodes(pid: int | str = "self") -> dict[str, int]:
    """Each namespace of process *pid* by its inode number: ``readlink /proc/PID/ns/net`` shows ``net:[inode]``.

    Two processes share a namespace exactly when the numbers are equal. ``"self"`` is this process, which
    stands for the host here (or for whatever encloses this notebook, if it runs in a container itself).
    """
    import os

    from .linux import NAMESPACE_FLAGS

    return {ns: os.stat(f"/proc/{pid}/ns/{ns}").st_ino for ns in NAMESPACE_FLAGS}


def own_namespaces(pid: int) -> list[str]:
    """The namespaces process *pid* does not share with this process: its "own" ones."""
    host, theirs = namespace_inodes(), namespace_inodes(pid)
    return [ns for ns in theirs if theirs[ns] != host[ns]]


_NAMESPACE_MEANING = {
    "mnt": "mounts: /, /proc, /dev, ...",
    "uts": "hostname",
    "ipc": "shared memory, message queues",
    "pid": "process numbers",
    "net": "interfaces, addresses, ports",
    "cgroup": "its view of the cgroup tree",
    "user": "user and group IDs",
}

# The files a limit is written to, for each controller (cgroup v1 names, then v2 names).
_LIMIT_FILES = {"memory": ("memory.limit_in_bytes", "memory.max"), "pids": ("pids.max",),
                "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max")}


def _limit_text(name: str, value: str) -> str:
    """One limit file as ``name = value``, saying "no limit" for the kernel's ways of writing infinity."""
    if value == "max" or value.startswith("max ") or value == "-1" or (value.isdigit() and int(value) >= 1 << 62):
        return f"{name} = {value} (no limit)"
    if name.startswith("memory.") and value.isdigit() and int(value) >= 1 << 20:
        return f"{name} = {value} ({int(value) / (1 << 20):g} MiB)"
    return f"{name} = {value}"


def _cgroup_limits(container: api.core_container.Container) -> tuple[str, list[tuple[str, str, list[str]]], list[str]]:
    """The container's cgroup version; (controller or "unified", directory, its limit files as text) for each
    directory it has; and the v1 controllers it has no directory for (no limit was asked for)."""
    from .container import cgroup_of

    cgroup = cgroup_of(container)
    out, unused = [], []
    for key, directory in sorted(cgroup.dirs.items()):
        if not directory.is_dir():
            unused.append(key)
            continue
        names = [n for c, files in _LIMIT_FILES.items() if key in (c, "unified") for n in files]
        lines = []
        for name in names:
            try:
                lines.append(_limit_text(name, (directory / name).read_text().strip()))
            except OSError:
                continue  # the other cgroup version's name, or a controller this tree lacks
        out.append((key, str(directory), lines))
    return cgroup.version, out, unused


def _process_ids(pid: int) -> list[str]:
    """The ``NSpid`` line of /proc/PID/status: the process's PID in each PID namespace, outermost first."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[1:]
    except OSError:
        pass
    return [str(pid)]


def namespace_graph(container: api.Container | api.core_container.Container) -> graphviz.Digraph:
    """A running container as the kernel sees it: one process, the namespaces it is in, its cgroup.

    Left, the container's PID 1 with its number on the host (``state.json``'s ``pid``) and inside. In the
    middle, each of its seven namespaces, compared with this process's (``/proc/<pid>/ns/*`` against
    ``/proc/self/ns/*``): a green "own" namespace is one the runtime created, a grey "host's" one is shared
    with the host. Right, its cgroup directories and the limits written there. Node names are fixed
    (``process``, ``ns_mnt``, ``cgroup_memory``), so only the numbers differ from run to run.
    """
    from .container import ContainerError

    c = getattr(container, "_c", container)  # the API's Container wraps the engine's one
    c.reload()
    if c.status != "running":
        raise ContainerError(f"container {c.name} is not running: only a running container has namespaces")
    backend = c.state.get("backend", "native")
    if backend not in ("native", "rootless"):  # state.json's pid is runc's or proot's, not the container's PID 1
        raise ContainerError(f"container {c.name} runs under {backend}: namespace_graph draws native and "
                             "rootless containers")
    pid = int(c.state["pid"])
    host, theirs = namespace_inodes(), namespace_inodes(pid)
    ids = _process_ids(pid)
    g = named_digraph(
        "namespace graph", c.name,
        graph_attr={"rankdir": "LR", "label": f"<<b>{html.escape(c.name)}</b> ({c.short_id}): one process, "
                                              "isolated by namespaces, limited by a cgroup>",
                    "labelloc": "t", "fontname": "Helvetica", "nodesep": "0.15", "ranksep": "0.5"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded,filled",
                   "fillcolor": "#eeeeee", "color": "#888888"},
        edge_attr={"color": "#888888", "arrowsize": "0.6"},
    )
    g.node("process", f"PID {ids[-1]} inside the container\nPID {ids[0]} on the host\n"
                      f"{truncate(' '.join(c.spec.args), 30)}", fillcolor="#cfe2f3", color="#3d6fa5")
    with g.subgraph(name="cluster_namespaces") as sub:
        sub.attr(label="namespaces (green: its own, grey: the host's)", fontsize="10", color="#bbbbbb")
        for ns, inode in theirs.items():
            own = inode != host[ns]
            whose = "own" if own else "host's"
            sub.node(f"ns_{ns}", f"{ns}: {whose} [{inode}]\n{_NAMESPACE_MEANING[ns]}",
                     fillcolor="#c7e9c0" if own else "#eeeeee")
    if backend == "rootless":
        with g.subgraph(name="cluster_cgroup") as sub:
            sub.attr(label="cgroup", fontsize="10", color="#bbbbbb")
            sub.node("cgroup_none", "no cgroup of its own: a rootless container,\nand this machine does not "
                                    "delegate cgroups\nto ordinary users (so no limits)")
        for target in [*(f"ns_{ns}" for ns in theirs), "cgroup_none"]:
            g.edge("process", target)
        return g
    version, directories, unused = _cgroup_limits(c)
    with g.subgraph(name="cluster_cgroup") as sub:
        sub.attr(label=f"cgroup ({version}): its limits", fontsize="10", color="#bbbbbb")
        for key, directory, lines in directories:
            shown = directory.replace(c.id, c.short_id + "…")
            sub.node(f"cgroup_{key}", "\n".join([shown, *(lines or ["(no limit files)"])]), fillcolor="#fde9c9")
        if unused:  # cgroup v1: a hierarchy is joined only to enforce a limit (each join costs milliseconds)
            sub.node("cgroup_unused", f"{', '.join(unused)}: no cgroup of its own\n(no limit asked for)")
    targets = [f"ns_{ns}" for ns in theirs] + [f"cgroup_{key}" for key, _, _ in directories]
    for target in targets + (["cgroup_unused"] if unused else []):
        g.edge("process", target)
    return g


