"""Build views: a ``pycontainers build`` drawn as a graph, walked through step by step, or shown as a transcript.

Everything here renders what ``pycontainers.build.build`` returned, its ``BuildResult``: the final image, one
``StepResult`` per step after each FROM (number, instruction, cache verdict, why it missed, the step's image ID
and layer), and the structured events the classic transcript is printed from. Nothing is re-keyed, re-hashed or
re-run here. A few facts come from elsewhere, because the result does not carry them (see ``_Steps``):

* the stages, their FROM lines and base image IDs: from the ``step`` and ``done`` events of the FROM steps;
* the layer of a step that came from the cache (its ``StepResult`` has ``layer=None``): from the step image's
  config in the store, whose last history line says whether the step made a layer;
* the step image itself (for the files a layer added, changed or whited out): the build cache records each
  step image's manifest next to its ID;
* why a step missed when its ``StepResult.reason`` is empty (a RUN step's, until the builder records it): the
  reason of the step's own ``cache`` event, which is what the transcript printed.

Like ``pycontainers.views``, graphviz and ipywidgets are imported inside the functions that need them.
"""

from __future__ import annotations

import functools
import html
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .build import BuildCache, BuildResult, StepResult, transcript_line
from .errors import PyContainersError
from .image import Image, LayerReport
from .oci import MEDIA_LAYER, Descriptor
from .tables import Table, truncate
from .units import human_size
from .views import layer_changes_table, named_digraph, short_digest, table_html

if TYPE_CHECKING:
    import graphviz
    import ipywidgets

HIT_COLOUR = "#c7e9c0"  # green: "Using cache"
MISS_COLOUR = "#fdd0a2"  # orange: the step ran
CONFIG_COLOUR = "#eeeeee"  # grey: no layer, only the image's config changed
HIT_TEXT, MISS_TEXT = "#1a7f37", "#a84300"  # the same verdicts as text colours (readable on white)
IMAGE_COLOUR, IMAGE_BORDER = "#cfe2f3", "#3d6fa5"  # images, as in ``views.layer_graph``

_FROM = re.compile(r"FROM\s+(?:--\S+\s+)*(?P<base>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.IGNORECASE | re.DOTALL)
_COPY_FROM = re.compile(r"^(?:COPY|ADD)\s.*?--from=(?P<source>\S+)", re.IGNORECASE | re.DOTALL)


# ------------------------------------------------------------------------------------- what a build holds


@dataclass
class Stage:
    """One ``FROM`` and the steps after it, as the build's events and results tell them."""

    index: int
    number: int  # the FROM step's number in the transcript ("Step 1/4")
    line: int
    instruction: str  # "FROM busybox AS builder"
    base: str  # the base as written: "busybox", "scratch", or an earlier stage's name
    name: str | None  # the stage's AS name, lower-cased as Docker does
    base_id: str | None  # the base image's ID (None: scratch)
    steps: list[StepResult] = field(default_factory=list)


class NoBuildResult(PyContainersError):
    """A view was given None where a build's result goes: the ``%%dockerfile`` cell's build failed."""


def _check_result(result: BuildResult | None) -> None:
    """One sentence, not an AttributeError from inside a view, when the build to show did not happen: the
    ``%%dockerfile`` magic leaves ``_build = None`` after printing its ``Error:`` line."""
    if result is None:
        raise NoBuildResult("there is no build to show: the last %%dockerfile cell failed (its Error line says "
                            "why) or has not run; fix it and run it again, then this cell")


def build_stages(result: BuildResult) -> list[Stage]:
    """The stages of *result*, in order, each with its FROM line, base image ID and its ``StepResult``s."""
    _check_result(result)
    stages: list[Stage] = []
    header: dict[str, Any] | None = None
    for event in result.events:
        if event["type"] == "step":
            header = event if event["instruction"].split(None, 1)[0].upper() == "FROM" else None
        elif event["type"] == "done" and header is not None:
            match = _FROM.match(header["instruction"])
            base = match.group("base") if match else header["instruction"].split(None, 1)[-1]
            name = match.group("name") if match else None
            stages.append(Stage(len(stages), header["number"], header["line"], header["instruction"], base,
                                name.lower() if name else None, event.get("image")))
            header = None
    for step in result.steps:
        if step.stage < len(stages):
            stages[step.stage].steps.append(step)
    return stages


def total_steps(result: BuildResult) -> int:
    """The N of "Step k/N" (FROM and global ARG lines count, as in Docker's transcript)."""
    _check_result(result)
    return next((e["total"] for e in result.events if e["type"] == "step"), len(result.steps))


def stage_of(stages: Sequence[Stage], ref: str, before: int) -> Stage | None:
    """The earlier stage a ``FROM x`` or ``COPY --from=x`` names, by AS name or by number; None: an image."""
    for stage in stages[:before]:
        if (stage.name is not None and stage.name == ref.lower()) or ref == str(stage.index):
            return stage
    return None


class _Steps:
    """Per-step facts read from the store, once each: the step's image and its layer."""

    def __init__(self, result: BuildResult) -> None:
        _check_result(result)
        self.result = result
        self.store = result.image.store
        self._reports: dict[str, tuple[Image, list[LayerReport]]] = {}

    @functools.cached_property
    def reasons(self) -> list[str]:
        return step_reasons(self.result)

    @functools.cached_property
    def manifests(self) -> dict[str, str]:
        """Image ID -> manifest digest of every step image the build cache knows, and of the result."""
        known = {entry["id"]: entry["manifest"] for entry in BuildCache(self.store).steps.values()}
        known[self.result.image.id] = self.result.image.manifest_digest
        return known

    def image(self, step: StepResult) -> Image | None:
        """The image this step produced, or None when the cache no longer has it (pruned)."""
        manifest = self.manifests.get(step.image_id)
        if manifest is None or not self.store.has_blob(manifest):
            return None
        return Image(self.store, manifest)

    def layer(self, step: StepResult) -> Descriptor | None:
        """The layer this step added; None for a config-only step (CMD, ENV, ...)."""
        if step.layer is not None:
            return Descriptor(MEDIA_LAYER, step.layer, step.layer_size)
        if not step.cached:
            return None  # a step that ran records its layer; none means it made none
        image = self.image(step)  # a cache hit: its result does not say, the step image's config does
        history = (image.config.get("history") or []) if image is not None else []
        if image is None or not history or history[-1].get("empty_layer") or not image.layers:
            return None
        return image.layers[-1]

    def changes(self, step: StepResult) -> tuple[Image, list[LayerReport]] | None:
        """The step image and ``inspect_layers()``'s reports for it (its own layer is the last one)."""
        if step.image_id not in self._reports:
            image = self.image(step)
            if image is None:
                return None
            self._reports[step.image_id] = (image, image.inspect_layers()[1])
        return self._reports[step.image_id]


def step_reasons(result: BuildResult) -> list[str]:
    """Why each of ``result.steps`` missed the cache, "" for a hit: the step's ``reason``, or where that is empty
    (a RUN step's), the reason its ``cache`` event gave, which is what the transcript printed."""
    _check_result(result)
    told: dict[int, list[str]] = {}  # step number -> the reasons of its cache events, in order
    number = None
    for event in result.events:
        if event["type"] == "step":
            number = event["number"]
        elif event["type"] == "cache" and number is not None:
            told.setdefault(number, []).append("" if event["hit"] else event.get("reason", ""))
    seen: Counter[int] = Counter()
    reasons = []
    for step in result.steps:
        k = seen[step.number]  # ONBUILD triggers share their FROM's number: match them in order
        seen[step.number] += 1
        events = told.get(step.number, [])
        reasons.append("" if step.cached else step.reason or (events[k] if k < len(events) else ""))
    return reasons


def verdict(step: StepResult, reason: str = "") -> str:
    """"Using cache", or "cache miss: <why>", as the transcript says it (*reason*: from ``step_reasons``)."""
    return "Using cache" if step.cached else f"cache miss: {reason or step.reason or 'it ran'}"


def steps_table(result: BuildResult) -> Table:
    """One row per step after FROM: number, Dockerfile line, instruction, cache verdict, the size of its layer
    (and, outside the default columns, ``ID``: the step image's short ID)."""
    facts = _Steps(result)
    rows = []
    for step, reason in zip(result.steps, facts.reasons, strict=True):
        layer = facts.layer(step)
        rows.append({"Step": str(step.number), "Line": str(step.line), "Instruction": truncate(step.instruction),
                     "Cache": verdict(step, reason), "Layer": human_size(layer.size) if layer else "no layer",
                     "ID": short_digest(step.image_id)})
    return Table(["Step", "Line", "Instruction", "Cache", "Layer"], rows,
                 headers={"ID": "IMAGE"})


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _wrap(text: str, width: int = 38) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


# ------------------------------------------------------------------------------------------------- graph


def build_graph(result: BuildResult, *, title: str | None = None) -> graphviz.Digraph:
    """The build as a graph: per stage a cluster from its FROM to its last step, the result at the bottom.

    Each step is a box with its instruction (shortened), its cache verdict and the reason for a miss, and the
    size of its layer: green when it came from the cache, orange when it ran, grey when it made no layer (its
    border then says hit or miss). Base images are drawn once each, however many stages start from them; a
    ``FROM stage`` or ``COPY --from=stage`` is a dashed edge from that stage's last step. Node names are
    positions (``stage1_step2``, ``base0``), so the drawing is the same on every run.
    """
    stages = build_stages(result)
    facts = _Steps(result)
    total = total_steps(result)
    tags = ", ".join(result.image.familiar_tags) or result.image.short_id
    hits = sum(s.cached for s in result.steps)
    caption = (f"{len(result.steps)} steps after FROM: {hits} from the cache, {len(result.steps) - hits} ran<br/>"
               "green: Using cache · orange: cache miss · grey: no layer (config only)")
    label = f"<b>{_esc(title)}</b><br/>" if title else ""
    label += f'<font point-size="10">{caption}</font>'
    g = named_digraph(
        "build graph", f"{tags}, {len(result.steps)} steps",
        graph_attr={"rankdir": "TB", "label": f"<{label}>", "labelloc": "t", "fontname": "Helvetica",
                    "nodesep": "0.3", "ranksep": "0.3"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded,filled",
                   "fillcolor": CONFIG_COLOUR, "color": "#888888"},
        edge_attr={"color": "#888888", "arrowsize": "0.6", "fontname": "Helvetica"},
    )
    position_of = {id(step): i for i, step in enumerate(result.steps)}
    externals: dict[str, str] = {}  # base image ID or --from image name -> node name: each drawn once

    def external(key: str, text: str) -> str:
        if key not in externals:
            externals[key] = f"base{len(set(externals.values()))}"
            g.node(externals[key], f"<{text}>", shape="box", style="filled", fillcolor=IMAGE_COLOUR,
                   color=IMAGE_BORDER)
        return externals[key]

    last: dict[int, str] = {}  # stage index -> its last node
    for stage in stages:
        first = f"stage{stage.index}_from"
        with g.subgraph(name=f"cluster_stage{stage.index}") as sub:
            what = f"stage {stage.index}" + (f": {stage.name}" if stage.name else "")
            if stage is stages[-1]:
                what += " (the result)"
            sub.attr(label=what, fontsize="10", color="#bbbbbb", style="rounded")
            sub.node(first, f"<<b>Step {stage.number}/{total}</b> · line {stage.line}<br/>"
                            f"{_esc(truncate(stage.instruction, 40))}>", fillcolor="white")
            previous = first
            for position, step in enumerate(stage.steps):
                node = f"stage{stage.index}_step{position}"
                layer = facts.layer(step)
                reason = facts.reasons[position_of[id(step)]]
                sub.node(node, _step_label(step, reason, layer, total), **_step_style(step, layer))
                sub.edge(previous, node)
                previous = node
        last[stage.index] = previous
        parent = stage_of(stages, stage.base, stage.index)
        if parent is not None:
            g.edge(last[parent.index], first, style="dashed", label=" FROM", fontsize="9")
        elif stage.base_id is None:
            g.edge(external("scratch", "scratch<br/>(no layers)"), first)
        else:
            base = external(stage.base_id, f"<b>{_esc(stage.base)}</b><br/>ID {_esc(short_digest(stage.base_id))}")
            externals.setdefault(f"image {stage.base.lower()}", base)  # a later COPY --from=busybox: same node
            g.edge(base, first)
        for position, step in enumerate(stage.steps):
            match = _COPY_FROM.match(step.instruction)
            if match is None:
                continue
            source = match.group("source")
            origin = stage_of(stages, source, stage.index)
            tail = (last[origin.index] if origin is not None
                    else external(f"image {source.lower()}", f"<b>{_esc(source)}</b><br/>(an image)"))
            g.edge(tail, f"stage{stage.index}_step{position}", style="dashed", label=" --from", fontsize="9")
    image_text = "<br/>".join(_esc(t) for t in result.image.familiar_tags or ["<none>"])
    g.node("image", f"<{image_text}<br/>ID {_esc(result.image.short_id)}>", shape="box", style="filled",
           fillcolor=IMAGE_COLOUR, color=IMAGE_BORDER)
    if stages:
        g.edge(last[stages[-1].index], "image", color=IMAGE_BORDER)
    return g


def _step_label(step: StepResult, reason: str, layer: Descriptor | None, total: int) -> str:
    lines = [f"<b>Step {step.number}/{total}</b> · line {step.line}", _esc(truncate(step.instruction, 40))]
    if step.cached:
        lines.append("Using cache")
    else:
        lines.append("<i>cache miss:</i>")
        lines += [_esc(part) for part in _wrap(reason or "it ran")]
    lines.append(f"layer {_esc(human_size(layer.size))}" if layer is not None else "no layer (config only)")
    return "<" + "<br/>".join(lines) + ">"


def _step_style(step: StepResult, layer: Descriptor | None) -> dict[str, str]:
    verdict_colour = HIT_COLOUR if step.cached else MISS_COLOUR
    if layer is not None:
        return {"fillcolor": verdict_colour}
    border = HIT_TEXT if step.cached else MISS_TEXT
    return {"fillcolor": CONFIG_COLOUR, "color": border, "penwidth": "2"}




# ----------------------------------------------------------------------------------------------- stepper


def step_html(result: BuildResult, index: int, *, dockerfile: str = "Dockerfile",
              _facts: _Steps | None = None) -> str:
    """One step of *result* (``result.steps[index]``) as HTML: instruction, ``Dockerfile:LINE``, the cache
    verdict and why, the step's image ID, and the files its layer added, changed or whited out."""
    facts = _facts or _Steps(result)
    step = result.steps[index]
    colour = HIT_TEXT if step.cached else MISS_TEXT
    layer = facts.layer(step)
    parts = [
        f"<div><b>Step {step.number}/{total_steps(result)}</b> · <code>{_esc(dockerfile)}:{step.line}</code>"
        f" · stage {step.stage}</div>",
        f'<pre style="margin:4px 0">{_esc(step.instruction)}</pre>',
        f'<div style="color:{colour}"><b>{_esc(verdict(step, facts.reasons[index]))}</b></div>',
        f"<div>image ID <code>{_esc(step.image_id)}</code></div>",
    ]
    if layer is None:
        parts.append("<div>No layer: this step only changed the image's config, so history shows it as a 0B "
                     "<code>#(nop)</code> line.</div>")
    else:
        parts.append(f"<div>layer <code>{_esc(short_digest(layer.digest))}</code>, "
                     f"{_esc(human_size(layer.size))}</div>")
        seen = facts.changes(step)
        if seen is None:
            parts.append("<div><i>The step image is no longer in the build cache, so its files cannot be "
                         "listed.</i></div>")
        else:
            image, reports = seen
            parts.append(table_html(layer_changes_table(image, len(reports) - 1, reports),
                                    caption="What this layer added, changed and whited out", max_rows=50))
    return "\n".join(parts)


def build_stepper(result: BuildResult, *, dockerfile: str = "Dockerfile", step: int = 0) -> ipywidgets.VBox:
    """Walk through the steps of *result* with a slider or ◀ ▶ buttons; each shows ``step_html``.

    *dockerfile* is the file name the steps' lines refer to (``-f``; the result does not record it). *step* is
    the index in ``result.steps`` shown first. Thin on purpose: the slider only picks the step to render.
    """
    import ipywidgets as widgets

    facts = _Steps(result)
    tags = ", ".join(result.image.familiar_tags) or result.image.short_id
    hits = sum(s.cached for s in result.steps)
    summary = widgets.HTML(f"<b>{_esc(tags)}</b>: {len(result.steps)} steps after FROM, {hits} from the cache, "
                           f"{len(result.steps) - hits} ran")
    if not result.steps:
        return widgets.VBox([summary])
    labels = _unique([str(s.number) for s in result.steps])
    slider = widgets.SelectionSlider(options=list(zip(labels, range(len(labels)), strict=True)), value=step,
                                     description="Step", continuous_update=False)
    back = widgets.Button(description="◀", layout=widgets.Layout(width="3em"), tooltip="previous step")
    forward = widgets.Button(description="▶", layout=widgets.Layout(width="3em"), tooltip="next step")
    detail = widgets.HTML()
    rendered: dict[int, str] = {}

    def show(_change: object = None) -> None:
        index = slider.value
        if index not in rendered:
            rendered[index] = step_html(result, index, dockerfile=dockerfile, _facts=facts)
        detail.value = rendered[index]
        back.disabled, forward.disabled = index == 0, index == len(labels) - 1

    def move(by: int) -> None:
        slider.value = min(max(slider.value + by, 0), len(labels) - 1)

    back.on_click(lambda _button: move(-1))
    forward.on_click(lambda _button: move(1))
    slider.observe(show, names="value")
    show()
    return widgets.VBox([summary, widgets.HBox([back, slider, forward]), detail])


def _unique(labels: Iterable[str]) -> list[str]:
    """Slider labels must differ: ONBUILD triggers share their FROM's number, so they become 1a, 1b, ..."""
    labels = list(labels)
    out = []
    for i, label in enumerate(labels):
        same = [j for j, other in enumerate(labels) if other == label]
        out.append(label if len(same) == 1 else f"{label}{chr(ord('a') + same.index(i))}")
    return out


# -------------------------------------------------------------------------------------------- transcript


def transcript_html(events: Iterable[dict[str, Any]]) -> str:
    """The classic ``docker build`` transcript (``build.transcript_line``) with steps in bold, cache hits in
    green and misses in orange."""
    lines = []
    for event in events:
        text = transcript_line(event)
        if text is None:
            continue
        if event["type"] == "cache":
            colour = HIT_TEXT if event["hit"] else MISS_TEXT
            lines.append(f'<span style="color:{colour};font-weight:bold">{_esc(text)}</span>')
        elif event["type"] in ("step", "built", "tagged"):
            lines.append(f"<b>{_esc(text)}</b>")
        else:
            lines.append(_esc(text))
    style = "font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.35;margin:0"
    return f'<pre class="pycontainers-transcript" style="{style}">' + "\n".join(lines) + "</pre>"


__all__ = ["Stage", "build_graph", "build_stages", "build_stepper", "stage_of", "step_html", "step_reasons",
           "steps_table", "total_steps", "transcript_html", "verdict"]
