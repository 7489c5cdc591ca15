"""Views of the VM-versus-container measurements: the live race, its distributions, the comparison table, the
lectures' wish list and the density experiment, all drawn from what ``pycontainers.compare`` measured.

Nothing is measured here, and nothing is shown that a measurement did not produce: a column that could not be
measured says why, in the sentence ``compare`` gave.

Every view also has a plain-text form without numbers. nbval compares a cell's text and HTML but not a widget's
model or a plot's pixels, so a cell that shows a widget or a figure stays comparable from run to run: its text
says what was compared, and the numbers of this run are in the widget, the picture and the HTML. Notebook
libraries (ipywidgets, matplotlib, IPython) are imported inside the functions that use them, as in
``pycontainers.views``.
"""

from __future__ import annotations

import html
import io
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .compare import (
    LABELS,
    QUESTIONS,
    VM_PHASES,
    Comparison,
    Density,
    DensityReport,
    Environment,
    RaceEvent,
    RaceReport,
    RaceSample,
    TimedRun,
    compare,
    phase_meaning,
    race,
)
from .errors import PyContainersError
from .store import Store, tilde
from .units import human_size
from .views import CELL_STYLE, TABLE_STYLE

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

PHASE_COLOURS = {  # (kind, phase) -> colour: a container's phases in blues, a VM's in oranges, a venv's in purples
    ("container", "create"): "#c6dbef", ("container", "start"): "#6baed6", ("container", "command"): "#08519c",
    ("vm", "prepare"): "#fdd0a2", ("vm", "kernel start"): "#fdae6b", ("vm", "boot"): "#f16913",
    ("vm", "command"): "#8c2d04", ("vm", "power off"): "#bdbdbd",
    ("venv", "create"): "#bcbddc", ("venv", "command"): "#54278f",
}
SIDE_COLOURS = {"container": "#2171b5", "vm": "#d94801", "venv": "#6a51a3"}
LIVE_SCALE = 5.0  # seconds the live bars span at first: the race's goal; they stretch if a run takes longer
_BAR_STYLE = "display:flex;height:18px;width:100%;background:#f3f3f3;border-radius:3px;overflow:hidden"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _seconds(value: float) -> str:
    """Seconds with three significant digits: 0.0412 s, 4.13 s."""
    return f"{value:.3g} s"


def budget_text(size: int) -> str:
    """A memory budget the way people choose one: 1 GiB, 512 MiB (a budget is binary, unlike human_size)."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return human_size(size)


def command_text(command: Sequence[str]) -> str:
    return shlex.join(command)


class _Shown:
    """A widget with our own ``text/plain``: the widget's model ID is random, this text is not."""

    def __init__(self, widget: ipywidgets.Widget, text: str) -> None:
        self.widget = widget
        self.text = text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        data = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        data["text/plain"] = self.text
        return data

    def __repr__(self) -> str:
        return self.text


class HTMLView:
    """HTML for Jupyter, a text without numbers for everything else (``print``, nbval's ``text/plain``)."""

    def __init__(self, html_text: str, text: str) -> None:
        self.html = html_text
        self.text = text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


# ------------------------------------------------------------------------------------------------- race


def race_intro(image: str, command: Sequence[str], repeat: int = 1) -> str:
    """What a race widget shows as text: the setting only, no numbers."""
    races = "1 race" if repeat == 1 else f"{repeat} races"
    return (f"Race ({races}): a container and a VM start from the {image} image at the same moment and both run "
            f"`{command_text(command)}`.")


def race_text(report: RaceReport) -> str:
    """The race's outcome without a number: who finished first, how often; or why there was no race."""
    if not report.measured:
        return report.unavailable or "No race was run."
    n = len(report.samples)
    wins = sum(s.winner == "container" for s in report.samples)
    who = "the container" if wins == n else ("the VM" if wins == 0 else "each side sometimes")
    often = "" if wins in (0, n) else f" (the container {wins} of {n} times)"
    races = "the race" if n == 1 else f"all {n} races"
    if who == "each side sometimes":
        return f"{race_intro(report.image, report.command, n)} Each side won some races{often}."
    return f"{race_intro(report.image, report.command, n)} {who.capitalize()} finished first in {races}."


def _bar(run: TimedRun, scale: float) -> str:
    """One side's phases as a stacked bar on a shared time axis (*scale* seconds = full width)."""
    spans = []
    for p in run.phases:
        width = max(0.15, 100 * p.seconds / scale)
        tip = f"{p.name}: {_seconds(p.seconds)} ({phase_meaning(run.kind, p.name)})"
        spans.append(f'<span title="{_esc(tip)}" style="width:{width:.2f}%;'
                     f'background:{PHASE_COLOURS.get((run.kind, p.name), "#999")}"></span>')
    offset = max(0.0, 100 * run.start / scale)
    lead = f'<span style="width:{offset:.2f}%"></span>' if offset > 0.05 else ""
    return f'<div style="{_BAR_STYLE}">{lead}{"".join(spans)}</div>'


def _legend(run: TimedRun) -> str:
    items = [f'<span style="white-space:nowrap"><span style="display:inline-block;width:10px;height:10px;'
             f'background:{PHASE_COLOURS.get((run.kind, p.name), "#999")}"></span> '
             f"{_esc(p.name)} {_seconds(p.seconds)}</span>" for p in run.phases]
    return '<div style="font-size:11px;color:#444">' + " &nbsp; ".join(items) + "</div>"


def representative(report: RaceReport) -> RaceSample:
    """The race whose VM time is the median one (the first of two middles): the one drawn as bars."""
    ordered = sorted(report.samples, key=lambda s: s.vm.total)
    return ordered[(len(ordered) - 1) // 2]


def race_html(report: RaceReport) -> str:
    """Final bars (phases of each side on one time axis) and the ratio; with several races, their medians."""
    if not report.measured:
        return f"<div><b>No race:</b> {_esc(report.unavailable or '')}</div>"
    sample = representative(report)
    scale = max(sample.container.end, sample.vm.end)
    rows = []
    for run in (sample.container, sample.vm):
        what = LABELS[run.kind] + (f" ({run.accel})" if run.accel else "")
        rows.append(f'<tr><td style="{CELL_STYLE};width:9em"><b style="color:{SIDE_COLOURS[run.kind]}">'
                    f"{_esc(what)}</b><br/>{_seconds(run.total)}</td>"
                    f'<td style="{CELL_STYLE};width:100%">{_bar(run, scale)}{_legend(run)}</td></tr>')
    n = len(report.samples)
    if n == 1:
        summary = (f"The VM took <b>{report.ratio:.0f}×</b> as long as the container "
                   f"({_seconds(sample.vm.total)} against {_seconds(sample.container.total)}).")
    else:
        ratios = sorted(s.ratio for s in report.samples)
        summary = (f"Over {n} races the VM took <b>{report.ratio:.0f}×</b> as long as the container (medians "
                   f"{_seconds(report.median('vm'))} and {_seconds(report.median('container'))}; each race's ratio "
                   f"between {ratios[0]:.0f}× and {ratios[-1]:.0f}×). The bars show the median race.")
    outputs = (f"The container printed <code>{_esc(sample.container.output.strip()[:80])}</code>, the VM "
               f"<code>{_esc(sample.vm.output.strip()[:80])}</code>.")
    return (f'<div class="pycontainers-race"><table style="{TABLE_STYLE};width:100%">{"".join(rows)}</table>'
            f'<div style="margin-top:4px">{summary} {outputs}</div></div>')


def race_view(report: RaceReport) -> HTMLView:
    """The finished race as HTML, with ``race_text`` as its text."""
    return HTMLView(race_html(report), race_text(report))


class RaceWidget:
    """Live timers for both sides (one bar each, growing as the race runs), then the final bars.

    ``update`` is the progress callback ``compare.race`` calls; ``finish`` draws ``race_html``.
    """

    def __init__(self, image: str, command: Sequence[str], repeat: int = 1) -> None:
        import ipywidgets as widgets

        self.text = race_intro(image, command, repeat)
        self.repeat = repeat
        self.heading = widgets.HTML(f"<b>{_esc(self.text)}</b>")
        self.status = widgets.HTML("waiting to start")
        self.bars: dict[str, ipywidgets.FloatProgress] = {}
        self.labels: dict[str, ipywidgets.HTML] = {}
        rows = []
        for side in ("container", "vm"):
            self.bars[side] = widgets.FloatProgress(value=0.0, min=0.0, max=LIVE_SCALE,
                                                    layout=widgets.Layout(width="60%"))
            self.bars[side].style.bar_color = SIDE_COLOURS[side]
            self.labels[side] = widgets.HTML("waiting")
            name = widgets.HTML(f'<b style="color:{SIDE_COLOURS[side]}">{LABELS[side]}</b>',
                                layout=widgets.Layout(width="7em"))
            rows.append(widgets.HBox([name, self.bars[side], self.labels[side]]))
        self.result = widgets.HTML()
        self.box = widgets.VBox([self.heading, self.status, *rows, self.result])

    def update(self, event: RaceEvent) -> None:
        """Move one side's timer; stretch both bars' scale when a run outlasts it."""
        if event.elapsed > self.bars[event.side].max:
            for bar in self.bars.values():
                bar.max = event.elapsed * 1.25
        bar, label = self.bars[event.side], self.labels[event.side]
        bar.value = event.elapsed
        label.value = (f"<b>done</b> in {_seconds(event.elapsed)}" if event.done
                       else f"{_seconds(event.elapsed)} · {_esc(event.phase)}")
        if self.repeat > 1:
            self.status.value = f"race {event.sample + 1} of {self.repeat}"
        elif event.sample == 0:
            self.status.value = "racing"

    def finish(self, report: RaceReport) -> None:
        self.status.value = "finished" if report.measured else "not run"
        self.result.value = race_html(report)

    def fail(self, message: str) -> None:
        self.status.value = f"<b>stopped:</b> {_esc(message)}"

    def display(self) -> None:
        from IPython.display import display

        display(_Shown(self.box, self.text))


def race_widget(store: Store, image: str = "busybox", command: Sequence[str] = ("uname", "-r"), *,
                repeat: int = 1, timeout: float = 30) -> RaceReport:
    """One call: show live timers, run ``compare.race``, draw the final bars (and with *repeat* > 1 the
    distributions). A failure is shown as its one-line message and returned as a report without races."""
    from IPython.display import display

    command = tuple(command)
    widget = RaceWidget(image, command, repeat)
    widget.display()
    try:
        report = race(store, image, command, repeat=repeat, progress=widget.update, timeout=timeout)
    except PyContainersError as exc:
        widget.fail(str(exc))
        return RaceReport(image, command, unavailable=f"The race stopped: {str(exc).rstrip('.')}.")
    widget.finish(report)
    if report.measured and repeat > 1:
        display(distribution_view(report))
    return report


# ---------------------------------------------------------------------------------------- distributions


def distribution_figure(report: RaceReport) -> Figure:
    """Left: every race's total per side on a log axis (two orders of magnitude apart), medians marked.
    Right: each race's VM phases stacked, to see which phase varies."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    n = len(report.samples)
    for y, side in enumerate(("container", "vm")):
        values = report.totals(side)
        offsets = [(i - (n - 1) / 2) * (0.5 / max(n, 2)) for i in range(n)]  # fixed spread, no randomness
        left.scatter(values, [y + o for o in offsets], color=SIDE_COLOURS[side], alpha=0.8, zorder=3)
        median = report.median(side)
        left.vlines(median, y - 0.35, y + 0.35, color="black", linewidth=1.5, zorder=4)
        left.annotate(f"median {_seconds(median)}", (median, y + 0.38), ha="center", fontsize=9)
    left.set_xscale("log")
    left.set_yticks([0, 1], [LABELS["container"], LABELS["vm"]])
    left.set_ylim(-0.7, 1.8)
    left.set_xlabel("seconds from the start to the command's exit (log scale)")
    left.set_title(f"{n} races of {report.image} `{command_text(report.command)}`: the VM took "
                   f"{report.ratio:.0f}× as long (medians)", fontsize=10)
    left.grid(axis="x", which="both", alpha=0.3)
    for i, s in enumerate(report.samples):
        for p in s.vm.phases:
            right.barh(i, p.seconds, left=p.start - s.vm.start, color=PHASE_COLOURS.get(("vm", p.name), "#999"),
                       label=p.name if i == 0 else None)
    right.set_yticks(range(n), [f"race {i + 1}" for i in range(n)])
    right.invert_yaxis()
    right.set_xlabel("seconds since the VM side started")
    right.set_title("the VM's phases, race by race", fontsize=10)
    fig.legend(*right.get_legend_handles_labels(), loc="outside lower right", ncol=len(VM_PHASES), fontsize=8,
               frameon=False)
    return fig


class FigureView:
    """A matplotlib figure as PNG, with a text that names it instead of Matplotlib's size line."""

    def __init__(self, figure: Figure, text: str) -> None:
        self.figure = figure
        self.text = text

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=96, metadata={"Software": None})
        return buf.getvalue()

    def __repr__(self) -> str:
        return self.text


def distribution_view(report: RaceReport) -> FigureView:
    return FigureView(distribution_figure(report),
                      f"<race distributions: {len(report.samples)} races of {report.image} "
                      f"`{command_text(report.command)}`>")


# ------------------------------------------------------------------------------------------ comparison


def _memory_cell(env: Environment) -> str:
    if env.kind == "venv":
        return "no process of its own: the program's memory is all it costs"
    d = env.density
    if d is None:
        return ""
    f = d.per_instance
    detail = f"RSS {human_size(f.rss)}, peak {human_size(f.peak_rss)}"
    if f.helper_pss:
        return (f"<b>{human_size(f.cost)}</b> each: its processes {human_size(f.pss)} PSS ({detail}), its monitor "
                f"{human_size(f.helper_pss)} PSS")
    return f"<b>{human_size(f.cost)}</b> each: QEMU {human_size(f.pss)} PSS ({detail})"


def _density_cell(env: Environment) -> str:
    d = env.density
    if env.kind == "venv" or d is None:
        return "—"
    return (f"<b>{d.fits:,}</b> (extrapolated from {d.count} running at once, "
            f"{human_size(d.total_cost)} together)")


def _disk_cell(env: Environment) -> str:
    parts = " + ".join(f"{_esc(name)} {human_size(size)}" for name, size in env.disk)
    return f"<b>{human_size(env.disk_total)}</b>: {parts}" if env.disk else ""


def _startup_cell(env: Environment) -> str:
    run = env.startup
    if run is None:
        return ""
    phases = ", ".join(f"{_esc(p.name)} {_seconds(p.seconds)}" for p in run.phases)
    return f"<b>{_seconds(run.total)}</b> ({phases})"


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "not measured"}[value]


def _kernel_cell(c: Comparison, env: Environment) -> str:
    p = env.probe
    if p is None:
        return ""
    same = "the host's" if p.boot_id == c.host.boot_id else "its own"
    return f"<b>{_esc(same)}</b>: <code>{_esc(p.kernel)}</code>"


def _processes_cell(c: Comparison, env: Environment) -> str:
    p = env.probe
    if p is None:
        return ""
    verdict = "own" if p.own_processes(c.host) else "the host's"
    return f"<b>{verdict}</b>: the command was PID {p.pid} and saw {p.processes} processes"


def _network_cell(c: Comparison, env: Environment) -> str:
    p = env.probe
    if p is None:
        return ""
    verdict = "own" if p.own_network(c.host) else "the host's"
    return f"<b>{verdict}</b>: {_esc(', '.join(p.interfaces) or 'no interface')}"


def _files_cell(c: Comparison, env: Environment) -> str:
    p = env.probe
    if p is None:
        return ""
    if p.own_files():
        return f"<b>its own</b>: the {_esc(c.image)} image's files; a file made on the host was not there"
    where = f"; its Python is <code>{_esc(tilde(p.interpreter))}</code>, outside the venv" if p.interpreter else ""
    return f"<b>the host's</b>: it saw a file just made on the host{where}"


# (lecture category, row name, cell function): the rows of the comparison table, grouped as the lectures do.
_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("cost", "memory per instance", lambda c, e: _memory_cell(e)),
    ("cost", "how many fit in the budget", lambda c, e: _density_cell(e)),
    ("cost", "disk", lambda c, e: _disk_cell(e)),
    ("deployment", "from nothing to a command's answer", lambda c, e: _startup_cell(e)),
    ("deployment", "what was started", lambda c, e: _esc(e.how)),
    ("versatility", "kernel (uname -r)", _kernel_cell),
    ("isolation", "processes", _processes_cell),
    ("isolation", "network", _network_cell),
    ("portability", "files (user space)", _files_cell),
)
_CATEGORY_NOTES = {
    "cost": "what each running instance takes from the machine",
    "deployment": "how long until it does something",
    "versatility": "a VM can run any kernel; a container can only use the one it shares",
    "isolation": "what it can see of the rest of the machine",
    "portability": "what it brings along to the next machine",
}


def comparison_html(c: Comparison) -> str:
    """The comparison as one table: a column per kind, rows grouped under the lectures' headings."""
    head = "".join(f'<th style="{CELL_STYLE};text-align:left">{LABELS[e.kind]}</th>' for e in c.environments)
    out = [f'<table class="pycontainers-compare" style="{TABLE_STYLE}">',
           f'<caption style="text-align:left">Measured on this machine, now: {_esc(c.image)}; memory budget '
           f"{budget_text(c.budget)}; host kernel <code>{_esc(c.host.kernel)}</code></caption>",
           f'<thead><tr><th style="{CELL_STYLE}"></th>{head}</tr></thead><tbody>']
    category = None
    for cat, name, cell in _ROWS:
        if cat != category:
            category = cat
            out.append(f'<tr><td colspan="{len(c.environments) + 1}" style="{CELL_STYLE};background:#f3f3f3">'
                       f"<b>{cat}</b> · <i>{_esc(_CATEGORY_NOTES[cat])}</i></td></tr>")
        cells = []
        for env in c.environments:
            text = cell(c, env) if env.measured else ("<i>" + _esc(env.unavailable or "") + "</i>"
                                                      if name == _ROWS[0][1] else "")
            cells.append(f'<td style="{CELL_STYLE};white-space:normal;vertical-align:top">{text}</td>')
        out.append(f'<tr><td style="{CELL_STYLE}">{_esc(name)}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _grid(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def comparison_text(c: Comparison) -> str:
    """The comparison's yes/no answers as a plain table (no number, so the same in every run here)."""
    rows = [["", *(LABELS[e.kind] for e in c.environments)]]
    rows += [[q, *(_yes_no(c.verdict(e.kind, q)) for e in c.environments)] for q in QUESTIONS]
    lines = [_grid(rows)]
    lines += [env.unavailable for env in c.environments if env.unavailable]
    lines.append("Timings, memory and sizes of this run are in the HTML table.")
    return "\n".join(lines)


def comparison_view(c: Comparison) -> HTMLView:
    return HTMLView(comparison_html(c), comparison_text(c))


def measure_comparison(store: Store, image: str = "busybox", **options: Any) -> Comparison:
    """``compare.compare`` with a live status line saying what is being measured."""
    import ipywidgets as widgets

    status = widgets.HTML("starting")
    _display(_Shown(status, f"Measuring a venv, a container and a VM made from {image}, one after the other."))
    result = compare(store, image, progress=lambda message: setattr(status, "value", _esc(message)), **options)
    return result


def _display(obj: object) -> None:
    from IPython.display import display

    display(obj)


# ------------------------------------------------------------------------------------------- wish list

# The lectures' wish list, in this course's words, and the measured rows that answer each wish.
WISHES = (
    ("brings everything it needs: OS files, libraries, Python", "own files"),
    ("is isolated from everything else on the machine", "own processes"),
    ("uses few resources", None),
    ("starts quickly", None),
)


def wishlist_html(c: Comparison) -> str:
    """The wish list, one column per kind, each answer a measurement (the best number of a row in bold)."""
    head = "".join(f'<th style="{CELL_STYLE};text-align:left">{LABELS[e.kind]}</th>' for e in c.environments)
    out = [f'<table class="pycontainers-wishlist" style="{TABLE_STYLE}">',
           f'<thead><tr><th style="{CELL_STYLE};text-align:left">we want something that ...</th>{head}</tr></thead>',
           "<tbody>"]
    for wish, question in WISHES:
        cells = [_wish_cell(c, e, wish, question) for e in c.environments]
        out.append(f'<tr><td style="{CELL_STYLE}">{_esc(wish)}</td>'
                   + "".join(f'<td style="{CELL_STYLE};white-space:normal">{cell}</td>' for cell in cells)
                   + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _wish_cell(c: Comparison, env: Environment, wish: str, question: str | None) -> str:
    if not env.measured:
        return "<i>not measured</i>"
    if question == "own processes":
        both = c.verdict(env.kind, "own processes") and c.verdict(env.kind, "own network")
        return ("✅ own processes and network" if both else "❌ sees the host's processes and network")
    if question is not None:
        return "✅ the image's own files" if c.verdict(env.kind, question) else "❌ uses the host's files"
    if wish == "uses few resources":
        if env.kind == "venv":
            return "nothing beyond the program"
        costs = [e.density.per_instance.cost for e in c.environments if e.density]
        cost = env.density.per_instance.cost if env.density else 0
        text = f"{human_size(cost)} each"
        return f"<b>{text}</b>" if costs and cost == min(costs) else text
    totals = [e.startup.total for e in c.environments if e.startup and e.kind != "venv"]
    total = env.startup.total if env.startup else 0.0
    text = _seconds(total)
    if env.kind == "venv":
        return f"{text} (making it included)"
    return f"<b>{text}</b>" if totals and total == min(totals) else text


def wishlist_text(c: Comparison) -> str:
    """The yes/no wishes as plain text (the numeric ones only named)."""
    rows = [["we want something that ...", *(LABELS[e.kind] for e in c.environments)]]
    for wish, question in WISHES[:2]:
        verdicts = []
        for e in c.environments:
            yes = c.verdict(e.kind, question or "") if e.measured else None
            if question == "own processes" and yes:
                yes = bool(c.verdict(e.kind, "own network"))
            verdicts.append(_yes_no(yes))
        rows.append([wish, *verdicts])
    return _grid(rows) + "\nHow few resources and how quickly: numbers of this run in the HTML table."


def wishlist_view(c: Comparison) -> HTMLView:
    return HTMLView(wishlist_html(c), wishlist_text(c))


# --------------------------------------------------------------------------------------------- density


def _density_row(d: Density) -> str:
    f = d.per_instance
    cells = [LABELS[d.kind], f"{d.count}", _seconds(d.ready_seconds), human_size(f.rss), human_size(f.peak_rss),
             human_size(f.pss), human_size(f.helper_pss) if d.kind == "container" else "—",
             f"<b>{human_size(f.cost)}</b>", f"<b>{d.fits:,}</b>"]
    return "<tr>" + "".join(f'<td style="{CELL_STYLE};text-align:right">{cell}</td>' for cell in cells) + "</tr>"


def density_html(report: DensityReport) -> str:
    """Per kind: how many ran at once, how long until all ran, memory each (RSS, peak, PSS, monitor), and how
    many would fit in the budget."""
    heads = ("", "running at once", "all running after", "RSS each", "peak RSS each", "PSS each", "monitor each",
             "cost each", f"fit in {budget_text(report.budget)}")
    head = "".join(f'<th style="{CELL_STYLE};text-align:right">{_esc(h)}</th>' for h in heads)
    rows = [_density_row(d) for d in (report.container, report.vm) if d is not None]
    notes = "".join(f"<div><i>{_esc(why)}</i></div>" for why in report.unavailable.values())
    # (How many containers one VM's memory would hold is left for the reader: notebook 06's exercise 3.)
    line = ("<div>The last column divides the budget by the cost each: an extrapolation from what was "
            "measured.</div>" if report.container and report.vm else "")
    return (f'<table class="pycontainers-density" style="{TABLE_STYLE}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{line}{notes}")


def density_text(report: DensityReport) -> str:
    parts = []
    for d in (report.container, report.vm):
        if d is not None:
            parts.append(f"{d.count} {LABELS[d.kind]}{'s' if d.count != 1 else ''}")
    measured = f"Measured {' and '.join(parts)} running at once, then removed them all." if parts else ""
    return " ".join([measured, *report.unavailable.values()]).strip()


def density_view(report: DensityReport) -> HTMLView:
    return HTMLView(density_html(report), density_text(report))


__all__ = ["FigureView", "HTMLView", "RaceWidget", "comparison_html", "comparison_text", "comparison_view",
           "density_html", "density_text", "density_view", "distribution_figure", "distribution_view",
           "measure_comparison", "race_html", "race_intro", "race_text", "race_view", "race_widget",
           "wishlist_html", "wishlist_text", "wishlist_view"]
