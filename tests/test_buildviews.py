"""Build views (graph, stepper, transcript, steps table), the %%dockerfile magic, and notebook 02's checks.

Most builds here use COPY and config-only steps, which need no container; the ones with a RUN step are
skipped without root, like the builder's own tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainers.api import Client
from pycontainers.build import BuildResult, build
from pycontainers.buildviews import (
    CONFIG_COLOUR,
    HIT_COLOUR,
    MISS_COLOUR,
    build_graph,
    build_stages,
    build_stepper,
    step_html,
    step_reasons,
    steps_table,
    transcript_html,
)
from pycontainers.exercises import check_cache_misses, check_default_greeting, check_history_and_layers
from pycontainers.image import ImageBuilder
from pycontainers.store import Store

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps run in real containers: needs root")

GREETER = """FROM busybox
LABEL course=cs107
COPY greeting.txt /app/
ENV GREETING=hello
CMD ["cat", "/app/greeting.txt"]
"""

HELLO = """FROM busybox
RUN echo "built here" > /etc/motd
ENTRYPOINT ["/bin/echo", "Hello"]
CMD ["world"]
"""


def context(tmp_path: Path, dockerfile: str, name: str = "Dockerfile", **files: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / name).write_text(dockerfile)
    for path, text in files.items():
        (ctx / path).write_text(text)
    return ctx


def greeter_builds(store: Store, tmp_path: Path) -> tuple[BuildResult, BuildResult, BuildResult]:
    """First build, the same again, and again after greeting.txt changed."""
    ctx = context(tmp_path, GREETER, **{"greeting.txt": "hello\n"})
    first = build(store, ctx, tags=["greeter:v1"])
    again = build(store, ctx, tags=["greeter:v1"])
    (ctx / "greeting.txt").write_text("hello, edited\n")
    edited = build(store, ctx, tags=["greeter:v2"])
    return first, again, edited


def node_line(source: str, node: str) -> str:
    return next(line for line in source.splitlines() if line.strip().startswith(f"{node} ["))


# ------------------------------------------------------------------------------------------------- graph


def test_graph_colours_reasons_and_layers_of_a_first_build_and_a_rebuild(busybox_store: Store,
                                                                          tmp_path: Path) -> None:
    first, again, edited = greeter_builds(busybox_store, tmp_path)
    g = build_graph(first, title="first")
    # LABEL, COPY, ENV, CMD: all ran; only COPY made a layer
    assert f'fillcolor="{MISS_COLOUR}"' in node_line(g.source, "stage0_step1")
    for config_only in ("stage0_step0", "stage0_step2", "stage0_step3"):
        assert f'fillcolor="{CONFIG_COLOUR}"' in node_line(g.source, config_only)
    assert "first build" in node_line(g.source, "stage0_step0")
    assert "parent changed because step 2 missed" in node_line(g.source, "stage0_step1")
    assert "layer 2.56kB" in node_line(g.source, "stage0_step1")
    assert "no layer (config only)" in node_line(g.source, "stage0_step3")

    g = build_graph(again)
    assert "cache miss:" not in g.source and g.source.count("Using cache<br/>") == 4
    copy = node_line(g.source, "stage0_step1")  # a cache hit still shows the layer it brings
    assert f'fillcolor="{HIT_COLOUR}"' in copy and "layer 2.56kB" in copy
    assert f'fillcolor="{CONFIG_COLOUR}"' in node_line(g.source, "stage0_step0")

    g = build_graph(edited)
    assert "Using cache" in node_line(g.source, "stage0_step0")
    assert "/app/greeting.txt changed (sha256" in node_line(g.source, "stage0_step1")
    assert "parent changed because step 3 missed" in node_line(g.source, "stage0_step2")


def test_graph_names_nodes_by_position_and_has_no_address_in_its_repr(busybox_store: Store,
                                                                        tmp_path: Path) -> None:
    first, _again, _edited = greeter_builds(busybox_store, tmp_path)
    a, b = build_graph(first), build_graph(first)
    assert a.source == b.source
    assert repr(a) == "<build graph: greeter:v1, 4 steps>" and "0x" not in repr(a)
    assert "base0 -> stage0_from" in a.source and "stage0_step3 -> image" in a.source
    for i in range(3):
        assert f"stage0_step{i} -> stage0_step{i + 1}" in a.source


def test_graph_of_stages_draws_each_base_once_and_copy_from_edges(busybox_store: Store, tmp_path: Path) -> None:
    dockerfile = """FROM busybox AS builder
COPY a.txt /a.txt
FROM busybox
COPY --from=builder /a.txt /b.txt
COPY --from=busybox /etc/passwd /passwd
FROM builder AS again
COPY --from=1 /b.txt /c.txt
"""
    result = build(busybox_store, context(tmp_path, dockerfile, **{"a.txt": "a\n"}), tags=["stages"])
    stages = build_stages(result)
    assert [(s.index, s.base, s.name) for s in stages] == [(0, "busybox", "builder"), (1, "busybox", None),
                                                           (2, "builder", "again")]
    assert [[step.number for step in s.steps] for s in stages] == [[2], [4, 5], [7]]
    assert stages[0].base_id == stages[1].base_id and stages[2].base_id == result.steps[0].image_id
    source = build_graph(result).source
    # busybox is drawn once: two stages start from it and a COPY --from names it
    assert source.count("<b>busybox</b>") == 1 and "base1" not in source
    assert "base0 -> stage0_from" in source and "base0 -> stage1_from" in source
    assert "base0 -> stage1_step1" in source
    assert "stage0_step0 -> stage1_step0" in source  # COPY --from=builder
    assert "stage0_step0 -> stage2_from" in source  # FROM builder
    assert "stage1_step1 -> stage2_step0" in source  # COPY --from=1
    assert source.count('label=" --from"') == 3 and source.count('label=" FROM"') == 1
    assert "cluster_stage2" in source and "stage 2: again (the result)" in source


@needs_root
def test_graph_and_table_give_the_reason_a_run_step_missed(busybox_store: Store, tmp_path: Path) -> None:
    result = build(busybox_store, context(tmp_path, HELLO, "Dockerfile_cmd"), dockerfile="Dockerfile_cmd",
                   tags=["hello_world_cmd:first"])
    assert step_reasons(result) == ["first build", "parent changed because step 2 missed",
                                    "parent changed because step 2 missed"]
    run = node_line(build_graph(result).source, "stage0_step0")
    assert f'fillcolor="{MISS_COLOUR}"' in run and "first build" in run and "layer 2.56kB" in run
    rows = steps_table(result).rows
    assert [(r["Step"], r["Cache"], r["Layer"]) for r in rows] == [
        ("2", "cache miss: first build", "2.56kB"),
        ("3", "cache miss: parent changed because step 2 missed", "no layer"),
        ("4", "cache miss: parent changed because step 2 missed", "no layer")]
    detail = step_html(result, 0, dockerfile="Dockerfile_cmd")
    assert "Dockerfile_cmd:2" in detail and "/etc/motd" in detail and "added" in detail


# ------------------------------------------------------------------------------------ stepper and tables


def test_steps_table_lists_verdicts_and_layer_sizes(busybox_store: Store, tmp_path: Path) -> None:
    _first, again, edited = greeter_builds(busybox_store, tmp_path)
    assert [(r["Step"], r["Line"], r["Cache"], r["Layer"]) for r in steps_table(again).rows] == [
        ("2", "2", "Using cache", "no layer"), ("3", "3", "Using cache", "2.56kB"),
        ("4", "4", "Using cache", "no layer"), ("5", "5", "Using cache", "no layer")]
    assert steps_table(edited).rows[1]["Cache"].startswith("cache miss: /app/greeting.txt changed")
    assert steps_table(edited).plain().splitlines()[0].split() == ["STEP", "LINE", "INSTRUCTION", "CACHE", "LAYER"]


def test_step_html_shows_the_files_of_a_layer_even_for_a_cache_hit(busybox_store: Store, tmp_path: Path) -> None:
    _first, again, edited = greeter_builds(busybox_store, tmp_path)
    detail = step_html(again, 1, dockerfile="Dockerfile.greeter")
    assert "<code>Dockerfile.greeter:3</code>" in detail and "Using cache" in detail
    assert again.steps[1].image_id in detail and "/app/greeting.txt" in detail
    edited_copy = step_html(edited, 1)
    assert "greeting.txt changed" in edited_copy and "14B" in edited_copy  # "hello, edited\n"
    config_only = step_html(again, 3)
    assert "No layer" in config_only and "<table" not in config_only


def test_stepper_walks_through_the_steps(busybox_store: Store, tmp_path: Path) -> None:
    first, _again, _edited = greeter_builds(busybox_store, tmp_path)
    stepper = build_stepper(first, dockerfile="Dockerfile")
    summary, controls, detail = stepper.children
    back, slider, forward = controls.children
    assert "4 steps after FROM, 0 from the cache, 4 ran" in summary.value
    assert [label for label, _ in slider.options] == ["2", "3", "4", "5"]
    assert "LABEL course=cs107" in detail.value and back.disabled and not forward.disabled
    forward.click()
    assert slider.value == 1 and "/app/greeting.txt" in detail.value and "Dockerfile:3" in detail.value
    slider.value = 3
    assert "CMD" in detail.value and forward.disabled
    back.click()
    assert slider.value == 2 and "ENV GREETING=hello" in detail.value


def test_stepper_can_open_at_a_step(busybox_store: Store, tmp_path: Path) -> None:
    first, _again, _edited = greeter_builds(busybox_store, tmp_path)
    detail = build_stepper(first, step=1).children[2]
    assert "COPY greeting.txt /app/" in detail.value


def test_transcript_html_highlights_hits_and_misses_and_escapes(busybox_store: Store, tmp_path: Path) -> None:
    _first, again, edited = greeter_builds(busybox_store, tmp_path)
    html = transcript_html(edited.events)
    assert html.startswith('<pre class="pycontainers-transcript"')
    assert '<span style="color:#1a7f37;font-weight:bold"> ---&gt; Using cache</span>' in html  # LABEL: a hit
    assert '<span style="color:#a84300;font-weight:bold"> ---&gt; Cache miss: /app/greeting.txt changed' in html
    assert "<b>Step 3/5 : COPY greeting.txt /app/</b>" in html and "<b>Successfully tagged greeter:v2</b>" in html
    assert transcript_html(again.events).count("Using cache") == 4


# ------------------------------------------------------------------------------------------------ magic


@pytest.fixture
def shell(busybox_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """An IPython shell with the extension loaded, in a fresh working directory, on the test's store."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    work = tmp_path / "notebook"
    work.mkdir()
    monkeypatch.chdir(work)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "pycontainers.ipython")
    ip.user_ns.pop("_build", None)
    return ip


def test_magic_writes_the_cell_into_the_tag_s_context_and_builds_it(shell, busybox_store: Store,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cell = 'FROM busybox\nENTRYPOINT ["/bin/echo", "Hello"]\nCMD ["world"]'
    out = shell.run_cell_magic("dockerfile", "-t hello_world_cmd:first -f Dockerfile_cmd", cell)
    assert out is None
    written = Path("contexts/hello_world_cmd/Dockerfile_cmd")
    assert written.read_text() == cell + "\n"
    printed = capsys.readouterr()
    assert printed.err == ""
    lines = printed.out.splitlines()
    assert lines[0] == "Wrote contexts/hello_world_cmd/Dockerfile_cmd"
    assert "Step 1/3 : FROM busybox" in lines and lines[-1] == "Successfully tagged hello_world_cmd:first"
    result = shell.user_ns["_build"]
    assert isinstance(result, BuildResult) and result.image.familiar_tags == ["hello_world_cmd:first"]
    settings = Client(busybox_store.home).images.get("hello_world_cmd:first").core.settings
    assert settings["Entrypoint"] == ["/bin/echo", "Hello"] and settings["Cmd"] == ["world"]


def test_magic_options_context_build_args_and_no_cache(shell, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cell = "FROM busybox\nARG WHO\nCOPY greeting.txt /\nLABEL who=$WHO\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "greeting.txt").write_text("hi\n")
    shell.run_cell_magic("dockerfile", f"-t a:1 -t b:2 --context {elsewhere} --build-arg WHO=me", cell)
    assert (elsewhere / "Dockerfile").read_text() == cell and not Path("contexts").exists()
    result = shell.user_ns["_build"]
    assert sorted(result.image.familiar_tags) == ["a:1", "b:2"] and result.image.labels["who"] == "me"
    shell.run_cell_magic("dockerfile", f"-t a:1 --context {elsewhere} --build-arg WHO=me --no-cache", cell)
    assert step_reasons(shell.user_ns["_build"]) == ["--no-cache"] * 3
    assert capsys.readouterr().err == ""


def test_magic_without_a_tag_uses_an_untagged_context(shell) -> None:
    shell.run_cell_magic("dockerfile", "", "FROM busybox\nCMD [\"true\"]\n")
    assert Path("contexts/untagged/Dockerfile").exists()
    assert shell.user_ns["_build"].image.tags == []


def test_magic_error_prints_one_line_naming_the_line(shell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["_build"] = "an earlier result"
    shell.run_cell_magic("dockerfile", "-t broken -f Dockerfile_bad", "FROM busybox\nRUNN echo hi\n")
    printed = capsys.readouterr()
    assert printed.err.splitlines() == ["Error: Dockerfile_bad:2: unknown instruction: RUNN (did you mean RUN?)"]
    assert "Traceback" not in printed.out + printed.err
    assert shell.user_ns["_build"] is None
    shell.run_cell_magic("dockerfile", "-t broken", "FROM busybox\nCOPY missing.txt /\n")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("Error: Dockerfile:2: COPY failed")
    shell.run_cell_magic("dockerfile", "-t Not:Valid", "FROM busybox\n")
    assert capsys.readouterr().err.count("\n") == 1


@needs_root
def test_magic_failing_run_prints_one_line(shell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell_magic("dockerfile", "-t broken -f Dockerfile_cmd", "FROM busybox\nRUN true\nRUN exit 3\n")
    printed = capsys.readouterr()
    assert printed.err.splitlines() == ["Error: Dockerfile_cmd:3: RUN exit 3: returned a non-zero code: 3"]
    assert "Step 3/3 : RUN exit 3" in printed.out and "Traceback" not in printed.out


def test_magic_bad_options_are_a_usage_error(shell) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError):
        shell.run_cell_magic("dockerfile", "-t x --nope", "FROM busybox\n")


# ------------------------------------------------------------------------------------- notebook 02 checks


def greeter_image(store: Store, tag: str, entrypoint: list[str] | None, cmd: list[str] | None) -> None:
    b = ImageBuilder(store, "busybox")
    b.set(Entrypoint=entrypoint, Cmd=cmd)
    b.commit(tag)


@pytest.mark.parametrize(("entrypoint", "cmd", "ok", "words"), [
    (["/bin/echo", "Hello"], ["CS107"], True, "Right"),
    (["/bin/echo", "Hello"], ["world"], False, "printed 'Hello world'"),
    (["/bin/echo", "Hello", "CS107"], None, False, "the new words are in ENTRYPOINT"),
    (["/bin/echo"], ["Hello", "CS107"], False, "printed 'Pavlos'"),
    (["/bin/sh", "-c", "echo Hello CS107"], None, False, "shell form"),
    (["cat"], ["/etc/motd"], False, "not an echo"),
])
def test_check_default_greeting(busybox_store: Store, entrypoint: list[str], cmd: list[str] | None, ok: bool,
                                words: str) -> None:
    client = Client(busybox_store.home)
    assert not check_default_greeting(client, "hello_world_cmd:cs107", "Hello CS107").answered
    greeter_image(busybox_store, "hello_world_cmd:cs107", entrypoint, cmd)
    result = check_default_greeting(client, "hello_world_cmd:cs107", "Hello CS107")
    assert result.ok is ok and words in result.message


def test_check_cache_misses(busybox_store: Store, tmp_path: Path) -> None:
    _first, again, edited = greeter_builds(busybox_store, tmp_path)  # edited: steps 3, 4, 5 miss
    assert not check_cache_misses(edited, ...).answered
    right = check_cache_misses(edited, {3, 4, 5})
    assert right.ok and "app/greeting.txt changed" in right.message and "parent image was new" in right.message
    assert check_cache_misses(edited, "3, 4 5").ok and check_cache_misses(edited, [5, 4, 3]).ok
    assert "FROM" in check_cache_misses(edited, {1, 3, 4, 5}).message
    assert "step 2 came from the cache" in check_cache_misses(edited, {2, 3, 4, 5}).message
    assert "steps 4, 5 missed too" in check_cache_misses(edited, {3}).message
    assert not check_cache_misses(edited, {4, 5}).ok
    assert "not a set of step numbers" in check_cache_misses(edited, 3.5).message
    assert "missed nothing" in check_cache_misses(again, {3, 4, 5}).message
    assert check_cache_misses(again, set()).ok
    assert "no build result" in check_cache_misses(None, {3}).message


def test_check_history_and_layers(busybox_store: Store, tmp_path: Path) -> None:
    greeter_builds(busybox_store, tmp_path)
    client = Client(busybox_store.home)
    # busybox: its layer and its CMD; greeter: LABEL, COPY (a layer), ENV, CMD
    busybox = client.images.get("busybox").core
    lines, layers = len(busybox.history()) + 4, len(busybox.layers) + 1
    assert not check_history_and_layers(client, "greeter:v2", ...).answered
    assert check_history_and_layers(client, "greeter:v2", (lines, layers)).ok
    assert "fewer layers" in check_history_and_layers(client, "greeter:v2", (lines, lines)).message
    assert "history lines" in check_history_and_layers(client, "greeter:v2", (lines - 2, layers)).message
    assert "number of layers" in check_history_and_layers(client, "greeter:v2", (lines, layers + 1)).message
    assert "pair" in check_history_and_layers(client, "greeter:v2", 7).message
    assert "no image" in check_history_and_layers(client, "nope:1", (lines, layers)).message


def test_views_of_a_failed_build_say_so_in_one_sentence() -> None:
    """After a failed ``%%dockerfile`` cell, ``_build`` is None: each view says there is no build to show,
    instead of an AttributeError from inside it."""
    from pycontainers.buildviews import NoBuildResult, build_graph, build_stages, step_reasons, steps_table

    for view in (steps_table, build_graph, build_stages, step_reasons):
        with pytest.raises(NoBuildResult, match="the last %%dockerfile cell failed"):
            view(None)  # type: ignore[arg-type]


def test_magic_interrupted_stops_the_cell_in_one_sentence(shell, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop button during a build: the interrupt goes on (Run All stops there) with one sentence,
    not the engine's frames, and ``_build`` is None."""
    import pycontainers.ipython as magic

    def interrupted(cell: str, options: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(magic, "run_build", interrupted)
    shell.user_ns["_build"] = "an earlier result"
    with pytest.raises(KeyboardInterrupt, match="Build stopped: nothing was tagged") as caught:
        shell.run_cell_magic("dockerfile", "-t stopped", "FROM busybox\n")
    assert caught.value.__suppress_context__ and shell.user_ns["_build"] is None
