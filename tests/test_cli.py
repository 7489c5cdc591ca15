"""The command line: Docker's columns, flags, messages and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pycontainers.image import Image, ImageBuilder, get_image, list_images
from pycontainers.store import Store

HEX12 = re.compile(r"^[0-9a-f]{12}$")
SIZE = re.compile(r"^\d+(\.\d+)?(B|kB|MB|GB)$")
Run = Callable[..., tuple[int, str, str]]


def build(store: Store, *tags: str, content: str = "x") -> Image:
    b = ImageBuilder(store, "busybox")
    with b.layer(f"RUN echo {content} > /x") as fs:
        fs.add_file("/x", content)
    return b.commit(*tags)


def columns(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())


def cut(header: str, names: list[str], line: str) -> dict[str, str]:
    """Cut a plain table row at the header's column positions (cells may hold double spaces)."""
    starts, pos = [], 0
    for name in names:
        pos = header.index(name, pos)
        starts.append(pos)
        pos += len(name)
    ends = [*starts[1:], None]
    return {n: line[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)}


# ----------------------------------------------------------------------------------------------- images


def test_images_plain_table(cli: Run, busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    code, out, err = cli("images")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert columns(lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = [columns(line) for line in lines[1:]]
    assert sorted((r[0], r[1]) for r in rows) == sorted(tuple(t.split(":")) for t in bb.familiar_tags)
    for repo, _tag, image_id, created, size in rows:
        assert repo == "busybox"
        assert image_id == bb.short_id and HEX12.match(image_id)
        assert created.endswith(" ago")
        assert SIZE.match(size)


def test_images_quiet_format_and_filters(cli: Run, busybox_store: Store) -> None:
    app = build(busybox_store, "app:1", "app:2")
    code, out, _ = cli("images", "-q")
    ids = out.split()
    assert code == 0 and len(ids) == len(set(ids)) == 2
    assert all(HEX12.match(i) for i in ids)
    assert set(ids) == {app.short_id, get_image(busybox_store, "busybox").short_id}

    code, out, _ = cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert code == 0
    assert sorted(out.split()) == sorted(["app:1", "app:2", *get_image(busybox_store, "busybox").familiar_tags])

    code, out, _ = cli("images", "app")
    assert [columns(line)[:2] for line in out.splitlines()[1:]] == [["app", "1"], ["app", "2"]]
    code, out, _ = cli("images", "--no-trunc", "--format", "{{.ID}}")
    assert app.id in out.split()

    code, out, err = cli("images", "--format", "{{.Nope}}")
    assert code == 1 and err.startswith("template parsing error: template: :1:2: executing") and "Nope" in err


def test_images_all_shows_untagged(cli: Run, busybox_store: Store) -> None:
    old = build(busybox_store, "app:1", content="old")
    build(busybox_store, "app:1", content="new")
    code, out, _ = cli("images", "-a")
    rows = [columns(line) for line in out.splitlines()[1:]]
    assert ["<none>", "<none>", old.short_id] == rows[-1][:3]
    code, out, _ = cli("images", "-f", "dangling=true", "-q")
    assert out.split() == [old.short_id]


def test_images_repository_filter_shows_only_matching_rows(cli: Run, busybox_store: Store) -> None:
    build(busybox_store, "app:1", "app:2", "other:9")
    code, out, _ = cli("images", "app:2")
    assert [columns(line)[:2] for line in out.splitlines()[1:]] == [["app", "2"]]
    code, out, _ = cli("images", "app")
    assert [columns(line)[:2] for line in out.splitlines()[1:]] == [["app", "1"], ["app", "2"]]


def test_images_lists_dangling_images_by_default(cli: Run, busybox_store: Store) -> None:
    old = build(busybox_store, "app:1", content="old")
    build(busybox_store, "app:1", content="new")
    code, out, _ = cli("images")
    assert any(columns(line)[:3] == ["<none>", "<none>", old.short_id] for line in out.splitlines())


# ---------------------------------------------------------------------------------------------- history

HISTORY_COLUMNS = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]


def test_history_columns_and_truncation(cli: Run, busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    steps = bb.history()
    long_step = next(s.created_by for s in steps if len(s.created_by) > 45)

    code, out, err = cli("history", "busybox")
    assert (code, err) == (0, "")
    header, *lines = out.splitlines()
    assert columns(header) == HISTORY_COLUMNS
    rows = [cut(header, HISTORY_COLUMNS, line) for line in lines]
    assert len(rows) == len(steps)
    assert rows[0]["IMAGE"] == bb.short_id
    assert [r["IMAGE"] for r in rows[1:]] == ["<missing>"] * (len(rows) - 1)
    assert rows[0]["CREATED BY"] == steps[0].created_by  # short enough to stay whole
    truncated = next(r["CREATED BY"] for r in rows if r["CREATED BY"].endswith("..."))
    assert len(truncated) == 45 and long_step.startswith(truncated[:-3])
    assert all(len(r["CREATED BY"]) <= 45 for r in rows)
    assert rows[0]["SIZE"] == "0B" and SIZE.match(rows[-1]["SIZE"])

    code, out, _ = cli("history", "--no-trunc", "busybox")
    header, *lines = out.splitlines()
    rows = [cut(header, HISTORY_COLUMNS, line) for line in lines]
    assert rows[0]["IMAGE"] == bb.id
    assert [r["CREATED BY"] for r in rows] == [s.created_by for s in steps]

    code, out, _ = cli("history", "-H", "false", "--format", "{{.Size}}", "busybox")
    assert out.split() == [str(s.size) for s in steps]
    code, out, _ = cli("history", "-H=false", "busybox")  # Docker's other table: CREATED AT, the time itself
    assert out.split()[:5] == ["IMAGE", "CREATED", "AT", "CREATED", "BY"] and "1970-01-01T00:00:00Z" in out


def test_history_of_a_built_image(cli: Run, busybox_store: Store) -> None:
    app = build(busybox_store, "app:1")
    code, out, _ = cli("history", "app:1")
    header, *lines = out.splitlines()
    rows = [cut(header, HISTORY_COLUMNS, line) for line in lines]
    assert rows[0]["IMAGE"] == app.short_id and rows[0]["CREATED BY"] == "RUN echo x > /x"
    assert rows[0]["SIZE"] != "0B"
    assert len(rows) == len(get_image(busybox_store, "busybox").history()) + 1


# ------------------------------------------------------------------------------------------- tag / rmi


def test_tag_and_rmi(cli: Run, busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    assert cli("tag", "busybox", "me/tools:v1") == (0, "", "")
    assert get_image(busybox_store, "me/tools:v1") == bb

    code, out, err = cli("rmi", "me/tools:v1")
    assert (code, out, err) == (0, "Untagged: me/tools:v1\n", "")
    code, out, err = cli("rmi", bb.short_id)
    assert code == 1 and out == "" and "must be forced" in err and err.startswith("Error: ")

    code, out, _ = cli("rmi", "-f", bb.short_id)
    lines = out.splitlines()
    assert code == 0
    assert sorted(lines[:-1]) == sorted(f"Untagged: {t}" for t in bb.familiar_tags)
    assert lines[-1] == f"Deleted: {bb.id}"
    assert re.fullmatch(r"Deleted: sha256:[0-9a-f]{64}", lines[-1])
    assert list_images(busybox_store) == []


def test_rmi_last_tag_deletes(cli: Run, busybox_store: Store) -> None:
    app = build(busybox_store, "app:1")
    app_id = app.id
    code, out, _ = cli("rmi", "app:1")
    assert code == 0 and out.splitlines() == ["Untagged: app:1", f"Deleted: {app_id}"]
    assert app not in list_images(busybox_store)
    assert not busybox_store.has_blob(app_id)  # pruned
    assert busybox_store.check() == []


def test_tag_to_an_invalid_name(cli: Run) -> None:
    code, out, err = cli("tag", "busybox", "Not/Valid::x")
    assert code == 1 and out == "" and err.startswith("Error: invalid reference") and err.count("\n") == 1


# --------------------------------------------------------------------------------------- prune / system


def test_image_prune_with_nothing_to_prune(cli: Run) -> None:
    code, out, _ = cli("image", "prune", "-f")
    assert code == 0 and out == "Total reclaimed space: 0B\n"


def test_image_prune_removes_dangling(cli: Run, busybox_store: Store) -> None:
    old_id = build(busybox_store, "app:1", content="old").id
    build(busybox_store, "app:1", content="new")
    code, out, err = cli("image", "prune", "-f")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == ["Deleted Images:", f"deleted: {old_id}"]
    assert lines[-1].startswith("Total reclaimed space: ") and lines[-1] != "Total reclaimed space: 0B"


def test_system_df(cli: Run, busybox_store: Store) -> None:
    code, out, _ = cli("system", "df")
    header, *rows = out.splitlines()
    assert code == 0
    assert columns(header) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert columns(rows[0])[:3] == ["Images", "1", "0"]  # active: used by a container, as Docker counts
    assert SIZE.match(columns(rows[0])[3])
    assert [columns(r)[:2] for r in rows[1:3]] == [["Containers", "0"], ["Local Volumes", "0"]]
    assert cli("run", "--name", "wrote", "-v", "kept:/v", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /f; "
               "head -c 300 /dev/zero > /v/g")[0] == 0
    assert cli("volume", "create", "loose")[0] == 0
    rows = cli("system", "df")[1].splitlines()[1:]
    assert columns(rows[0])[:3] == ["Images", "1", "1"]
    assert columns(rows[1]) == ["Containers", "1", "0", "5kB", "5kB (100%)"]  # stopped: all reclaimable
    assert columns(rows[2]) == ["Local Volumes", "2", "1", "300B", "0B (0%)"]  # loose is empty


def test_the_build_cache_is_shown_by_df_and_freed_by_builder_prune_and_system_prune_all(
        cli: Run, busybox_store: Store, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo cached > /step\n")

    def cache_row() -> list[str]:
        return columns(cli("system", "df")[1].splitlines()[4])

    assert cache_row() == ["Build Cache", "0", "0", "0B", "0B"]
    assert cli("build", "-q", "-t", "cached", str(tmp_path))[0] == 0
    assert cli("system", "prune", "-f")[0] == 0
    assert cache_row()[1] == "1"  # without -a, the cache stays (as Docker's, which prunes only dangling entries)
    for prune in (("builder", "prune", "-f"), ("system", "prune", "-a", "-f")):
        assert cli("build", "-q", "-t", "cached", str(tmp_path))[0] == 0
        assert cli("rmi", "cached")[0] == 0
        row = cache_row()
        assert row[1] == "1" and row[3] != "0B"  # one step, and what only it keeps (its layer) still there
        code, out, _ = cli(*prune)
        assert code == 0 and "Deleted build cache objects:" in out and not out.endswith("Total reclaimed space: 0B\n")
        assert cache_row() == ["Build Cache", "0", "0", "0B", "0B"]


def test_system_prune_volumes_removes_the_volumes_no_container_uses(cli: Run) -> None:
    assert cli("volume", "create", "kept")[0] == 0 and cli("volume", "create", "loose")[0] == 0
    assert cli("create", "--name", "user", "-v", "kept:/data", "busybox", "true")[0] == 0
    assert "Deleted Volumes:" not in cli("system", "prune", "-f")[1]  # volumes only when asked, as Docker
    assert cli("volume", "ls", "-q")[1].split() == ["kept", "loose"]
    assert cli("run", "--name", "scratch", "-v", "/scratch", "busybox", "true")[0] == 0  # an anonymous one
    anonymous = next(v for v in cli("volume", "ls", "-q")[1].split() if v not in ("kept", "loose"))
    code, out, _ = cli("system", "prune", "--volumes", "-f")
    volumes = out.partition("Deleted Volumes:\n")[2].partition("\n\n")[0].split("\n")
    assert code == 0 and volumes == [anonymous]  # its container went first; named ones stay, as Docker 23's
    assert cli("volume", "ls", "-q")[1].split() == ["kept", "loose"]
    code, out, _ = cli("volume", "prune", "-f")
    assert (code, out) == (0, "\nTotal reclaimed volumes: 0\n")
    code, out, _ = cli("volume", "prune", "-a", "-f")
    assert code == 0 and out.split("\n")[1:3] == ["kept", "loose"] and cli("volume", "ls", "-q")[1] == ""


def test_system_bases_fails_when_a_base_cannot_be_made(cli: Run, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """As where mmdebstrap is missing: the command says which base and why, and exits 1, so a script can tell."""
    from pycontainers import bases

    assert cli("system", "bases", "busybox") == (0, f"busybox: {cli('images', '-q', 'busybox')[1].strip()} "
                                                   "(already in the store)\n", "")
    monkeypatch.setattr(bases, "cache_store", lambda: Store(tmp_path / "empty-cache"))

    def no_tool(cache: Store, log: object) -> None:
        raise bases.BaseUnavailable("mmdebstrap is not installed")

    monkeypatch.setattr(bases, "build_debian_and_python", no_tool)
    code, out, _ = cli("system", "bases", "debian:bookworm-slim")
    assert (code, out) == (1, "debian:bookworm-slim: not available: mmdebstrap is not installed\n")


def test_system_check_on_a_sound_store(cli: Run) -> None:
    code, out, err = cli("system", "check")
    assert code == 0 and out.startswith("ok: ") and err == ""


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("args", [["history", "nosuch"], ["inspect", "nosuch"], ["rmi", "nosuch"],
                                  ["tag", "nosuch", "other:1"], ["save", "-o", "/dev/null", "nosuch"]])
def test_unknown_image_is_one_error_line(cli: Run, args: list[str]) -> None:
    code, out, err = cli(*args)
    assert code == 1
    assert out == ("[]\n" if args[0] == "inspect" else "")  # (Docker's inspect prints what it found: nothing)
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert "nosuch" in err


def test_inspect_prints_what_it_found_and_looks_for_containers_first(cli: Run) -> None:
    """As Docker's: a container before an image of the same name (``--type`` picks), every name found is
    printed even if another is missing (exit 1 then), and networks and volumes are found too."""
    assert cli("create", "--name", "busybox", "busybox", "true")[0] == 0
    assert cli("inspect", "-f", "{{.Id}}", "busybox")[1] == cli("ps", "-aq", "--no-trunc")[1]  # the container
    assert cli("inspect", "--type", "image", "-f", "{{.Id}}", "busybox")[1].startswith("sha256:")
    assert cli("volume", "create", "vol")[0] == 0
    code, out, err = cli("inspect", "-f", "{{.Name}}", "vol", "nosuch", "none")
    assert (code, out, err) == (1, "vol\nnone\n", "Error: No such object: nosuch\n")
    assert cli("volume", "inspect", "-f", "{{.Driver}}", "vol") == (0, "local\n", "")
    assert cli("container", "inspect", "nosuch")[2] == "Error: No such container: nosuch\n"


@pytest.mark.parametrize("args", [["images", "--bogus"], ["image"],
                                  ["save", "--format", "zip", "busybox"]])
def test_bad_usage_exits_125(cli: Run, args: list[str]) -> None:
    code, out, err = cli(*args)
    assert code == 125
    assert out == ""
    assert err.startswith("pycontainers: ") and err.count("\n") == 1


def test_too_few_arguments_are_said_as_docker_says_them_and_exit_1(cli: Run) -> None:
    """Docker's CLI: "'docker rmi' requires at least 1 argument." and exit 1 (not argparse's list of names,
    which would call run's optional command required)."""
    assert cli("rmi") == (1, "", "pycontainers: 'pycontainers rmi' requires at least 1 argument.\n"
                                 "See 'pycontainers rmi --help'.\n")
    assert cli("run")[::2] == (1, "pycontainers: 'pycontainers run' requires at least 1 argument.\n"
                                  "See 'pycontainers run --help'.\n")
    assert "'pycontainers tag' requires exactly 2 arguments." in cli("tag", "busybox")[2]
    assert "'pycontainers commit' requires at least 1 and at most 2 arguments." in cli("commit")[2]
    assert "'pycontainers network create' requires exactly 1 argument." in cli("network", "create")[2]
    assert cli("exec", "web") == (1, "", "pycontainers: 'pycontainers exec' requires at least 2 arguments.\n"
                                         "See 'pycontainers exec --help'.\n")  # (no command: not run at all)
    # and a command that is not one, as Docker's "'frobnicate' is not a docker command."
    assert cli("frobnicate") == (1, "", "pycontainers: 'frobnicate' is not a pycontainers command.\n"
                                        "See 'pycontainers --help'\n")


def test_usage_error_names_the_program_once(cli: Run) -> None:
    _code, _out, err = cli("images", "--bogus")
    assert not err.startswith("pycontainers: pycontainers")


@pytest.mark.parametrize(("args", "said"), [
    (["run", "--mem", "1g", "busybox"], "run: unknown flag: --mem"),  # not taken for --memory
    (["run", "--pid", "host", "busybox"], "run: unknown flag: --pid"),  # not "argument --pids-limit"
    (["ps", "--filt", "name=x"], "ps: unknown flag: --filt"),
    (["network", "ls", "--bogus"], "network ls: unknown flag: --bogus"),
    (["version", "extra"], "version: unexpected argument: extra"),
])
def test_flags_are_never_abbreviated_and_unknown_ones_are_named(cli: Run, args: list[str], said: str) -> None:
    """As Docker's: no prefix of a flag stands for it, and an unknown flag is named with its command."""
    assert cli(*args) == (125, "", f"pycontainers: {said}\n")


def test_version(cli: Run) -> None:
    code, out, _ = cli("version")
    assert code == 0 and re.fullmatch(r"pycontainers version \d+\.\d+\.\d+\n", out)


def test_console_script(busybox_store: Store) -> None:
    script = Path(sys.executable).parent / "pycontainers"
    if not script.exists():
        pytest.skip(f"console script not installed at {script}")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home)}
    proc = subprocess.run([str(script), "images"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert columns(header) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert {columns(r)[0] for r in rows} == {"busybox"}
    proc = subprocess.run([str(script), "history", "nosuch"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1 and proc.stderr == "Error: No such image: nosuch\n"


def test_inspect_format_walks_the_document_like_go_templates(cli: Run) -> None:
    code, out, _ = cli("inspect", "--format", "{{.Config.Cmd}} {{json .Config.Cmd}} {{.RootFS.Type}}", "busybox")
    assert (code, out) == (0, '[sh] ["sh"] layers\n')  # Go's text form of a list, and JSON on request
    code, out, _ = cli("inspect", "-f", "{{.Id}}", "busybox", "busybox:1.35.0")
    assert code == 0 and len(set(out.split())) == 1 and out.startswith("sha256:")  # one line per object
    code, out, err = cli("inspect", "-f", "{{.Config.Nope}}", "busybox")
    assert code == 1 and out == "" and err.count("\n") == 1 and 'map has no entry for key "Nope"' in err  # as docker
    code, out, _ = cli("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "busybox")
    assert code == 0 and out.startswith("PATH=")
    assert cli("inspect", "-f", '{{index .Config.Labels "x"}}', "busybox") == (0, "\n", "")
    code, out, _ = cli("images", "--format", "{{.Repository}}{{if .Tag}}:{{.Tag}}{{end}}")
    assert code == 0 and "busybox:latest" in out.split()
    code, out, err = cli("inspect", "-f", "{{foo .Id}}", "busybox")  # one line, in Go's words; not echoed
    assert (code, out) == (1, "") and err == 'template parsing error: template: :1: function "foo" not defined\n'
    code, out, err = cli("images", "--format", "{{.Repository")  # (Docker's words for parsing and running alike)
    assert (code, out, err) == (1, "", "template parsing error: template: :1: unclosed action\n")


def test_inspect_format_on_a_container(cli: Run) -> None:
    assert cli("run", "--name", "done", "busybox", "sh", "-c", "exit 3")[0] == 3
    assert cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}", "done") == (
        0, "exited 3 false\n", "")
    image_labels = cli("inspect", "-f", "{{json .Config.Labels}}", "busybox")[1]
    assert "io.pycontainers.base.recipe" in image_labels  # a container has its image's labels, as with Docker
    assert cli("inspect", "-f", "{{json .Config.Labels}}", "done") == (0, image_labels, "")
    assert cli("rm", "done")[0] == 0


def test_inspect_and_rm_take_a_containers_full_id(cli: Run) -> None:
    """A 64-digit ID is no image reference (Docker refuses to parse one), but it names a container."""
    code, full_id, _ = cli("run", "-d", "busybox", "true")
    full_id = full_id.strip()
    assert code == 0 and len(full_id) == 64
    assert cli("inspect", "-f", "{{.Id}}", full_id) == (0, full_id + "\n", "")
    assert cli("inspect", "-f", "{{.Id}}", "f" * 64)[2] == f"Error: No such object: {'f' * 64}\n"
    assert cli("rm", "-f", full_id) == (0, full_id + "\n", "")


def test_create_then_start(cli: Run) -> None:
    """``create`` makes the container without running it (status Created); ``start`` runs it."""
    code, cid, _ = cli("create", "--name", "made", "busybox", "sh", "-c", "echo hello from made")
    assert code == 0 and len(cid.strip()) == 64
    assert cli("ps", "-a", "--format", "{{.Names}} {{.Status}}")[1] == "made Created\n"
    assert cli("start", "made")[0] == 0
    assert cli("wait", "made") == (0, "0\n", "")
    assert cli("logs", "made") == (0, "hello from made\n", "")
    assert cli("rm", "made")[0] == 0
    code, out, err = cli("create", "nosuch")
    assert (code, out) == (125, "") and err.startswith("Unable to find image 'nosuch:latest' locally\n"
                                                       "pycontainers: No such image: nosuch: it is not in this store")
    # a repository here under another tag (`debian` for debian:bookworm-slim), or a misspelling: named
    assert cli("create", "busybox:1.36")[2] == ("Unable to find image 'busybox:1.36' locally\n"
                                                "pycontainers: No such image: busybox:1.36: this store has "
                                                "busybox:1.35.0, busybox:latest (pycontainers images lists every "
                                                "image here)\n")
    assert "this store has busybox:latest" in cli("run", "--rm", "busybx", "true")[2]


def test_save_and_load_name_the_file_they_cannot_use(cli: Run, tmp_path: Path) -> None:
    code, _, err = cli("save", "-o", str(tmp_path / "missing" / "x.tar"), "busybox")
    assert (code, err) == (1, f"Error: failed to save image: cannot write {tmp_path}/missing/x.tar: "
                              "No such file or directory\n")
    code, _, err = cli("load", "-i", str(tmp_path / "nothing.tar"))
    assert (code, err) == (1, f"Error: open {tmp_path}/nothing.tar: No such file or directory\n")


def test_prune_asks_whatever_stdin_is(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """`echo n | pycontainers container prune` keeps everything, as does the end of input; only y or -f prune."""
    import io

    assert cli("run", "--name", "stopped", "busybox", "true")[0] == 0
    for answer in ("n\n", ""):
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        code, out, _ = cli("container", "prune")
        assert code == 0 and out.startswith("WARNING! This will remove all stopped containers.")
        assert cli("ps", "-aq")[1] != ""
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert "Deleted Containers:" in cli("container", "prune")[1]
    assert cli("ps", "-aq")[1] == ""


def test_docker_exit_codes_of_small_mistakes(cli: Run) -> None:
    """What docker answers, and with which exit code, to a bad size, a stopped container, a missing one."""
    code, _, err = cli("run", "--rm", "-m", "10x", "busybox", "true")
    assert code == 125 and "invalid size '10x'" in err
    code, _, err = cli("run", "--rm", "-v", "/tmp:/", "busybox", "true")
    assert code == 125 and err.endswith("destination can't be '/'\n")
    code, _, err = cli("run", "--rm", "-w", "/etc/passwd", "busybox", "pwd")
    assert (code, err) == (125, 'pycontainers: chdir to cwd ("/etc/passwd") failed: not a directory\n')
    assert cli("run", "--name", "stopped", "busybox", "true")[0] == 0
    assert cli("exec", "stopped", "true") == (1, "", "Error: container stopped is not running\n")
    assert cli("top", "stopped") == (1, "", "Error: container stopped is not running\n")
    assert cli("rm", "-f", "nosuch", "stopped") == (0, "stopped\n", "")  # -f: a missing one is no error
    assert cli("rm", "nosuch") == (1, "", "Error: No such container: nosuch\n")
    assert cli("volume", "rm", "-f", "nosuchvol") == (0, "", "")
    assert cli("run", "-d", "--name", "up", "busybox", "sleep", "30")[0] == 0
    code, _, err = cli("exec", "-w", "/nonexist", "up", "pwd")
    assert (code, err) == (126, 'pycontainers: chdir to cwd ("/nonexist") failed: no such file or directory\n')
    assert cli("rm", "-f", "up")[0] == 0


def test_ps_shows_the_image_id_once_its_name_means_another_image(cli: Run, busybox_store: Store) -> None:
    """As Docker's ``ps``: the IMAGE column keeps the name given at ``run`` while that name still means the
    container's image; re-tagged to another image, or removed, the name would mislead, and the ID shows."""
    from pycontainers.image import get_image

    busybox = get_image(busybox_store, "busybox")
    assert cli("tag", "busybox", "mine:v1")[0] == 0
    assert cli("create", "--name", "kept", "mine:v1", "true")[0] == 0
    image = lambda: cli("ps", "-a", "--format", "{{.Image}}")[1].split()  # noqa: E731
    assert image() == ["mine:v1"]
    assert cli("commit", "kept", "mine:v1")[0] == 0  # the name now means the committed image
    assert image() == [busybox.id.removeprefix("sha256:")[:12]]
    assert cli("ps", "-a", "--no-trunc", "--format", "{{.Image}}")[1].split() == [busybox.id]
    assert cli("tag", "busybox", "mine:v1")[0] == 0  # back to what the container runs
    assert image() == ["mine:v1"]
    assert cli("rmi", "mine:v1")[0] == 0
    assert image() == [busybox.id.removeprefix("sha256:")[:12]]


def test_ps_filters_logs_tail_volume_prune(cli: Run) -> None:
    """docker ps --filter/-n/-l, logs --tail, volume prune: the everyday options beyond the basics."""
    assert cli("run", "--name", "counts", "busybox", "seq", "1", "5")[0] == 0
    assert cli("run", "--name", "fails", "busybox", "sh", "-c", "exit 3")[0] == 3
    assert cli("run", "-d", "--name", "runs", "busybox", "sleep", "30")[0] == 0
    names = lambda *args: cli("ps", *args, "--format", "{{.Names}}")[1].split()  # noqa: E731
    assert names("--filter", "name=s") == ["runs"]  # without -a: running ones only, as docker
    assert names("-a", "--filter", "name=s") == ["runs", "fails", "counts"]
    assert names("--filter", "status=exited") == ["fails", "counts"]  # a status filter looks at all
    assert names("--filter", "exited=3") == ["fails"]
    assert names("-a", "--filter", "name=s", "--filter", "status=running") == ["runs"]
    assert names("-n", "2") == ["runs", "fails"] and names("-l") == ["runs"]
    assert names("-a", "--filter", "ancestor=busybox") == ["runs", "fails", "counts"]
    assert names("-a", "--filter", "name=^runs$") == ["runs"]  # a regular expression, as docker's
    assert cli("run", "-d", "--name", "tagged", "-l", "tier=web", "-l", "team", "busybox", "sleep", "30")[0] == 0
    assert names("--filter", "label=tier=web") == names("--filter", "label=team") == ["tagged"]
    assert names("--filter", "label=tier=web", "--filter", "label=team") == ["tagged"]  # labels: all must match
    assert names("--filter", "label=tier=db") == names("--filter", "label=tier=web", "--filter", "label=x") == []
    labels = json.loads(cli("inspect", "-f", "{{json .Config.Labels}}", "tagged")[1])
    assert labels["tier"] == "web" and labels["team"] == ""  # (over the image's own)
    assert cli("rm", "-f", "tagged")[0] == 0
    assert names("-n", "0") == names("-n", "-1") == ["runs", "fails", "counts"]  # all
    for bad in ("colour=red", "status=bogus", "exited=x"):
        code, _, err = cli("ps", "--filter", bad)
        assert code == 1 and "invalid filter" in err
    assert cli("logs", "--tail", "2", "counts") == (0, "4\n5\n", "")
    assert cli("logs", "--tail", "0", "counts") == (0, "", "")
    assert cli("logs", "--tail", "-1", "counts")[1] == "1\n2\n3\n4\n5\n"  # negative: all
    assert cli("rm", "-f", "runs", "fails", "counts")[0] == 0
    assert cli("volume", "create", "used")[0] == 0 and cli("volume", "create", "unused")[0] == 0
    assert cli("create", "--name", "holder", "-v", "used:/data", "busybox", "true")[0] == 0
    assert cli("volume", "prune", "-f")[1] == "\nTotal reclaimed volumes: 0\n"  # named: only with -a (Docker 23)
    assert cli("volume", "prune", "-a", "-f")[1] == "Deleted Volumes:\nunused\n\nTotal reclaimed volumes: 1\n"
    assert cli("volume", "ls", "-q")[1] == "used\n"
    assert cli("rm", "holder")[0] == 0 and cli("volume", "rm", "used")[0] == 0


def test_inspect_splits_entrypoint_and_cmd_and_has_no_pid_once_exited(cli: Run) -> None:
    assert cli("run", "--name", "ep", "--entrypoint", "/bin/echo", "busybox", "a", "b")[0] == 0
    fmt = "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.State.Pid}} {{.Path}} {{json .Args}}"
    assert cli("inspect", "-f", fmt, "ep")[1] == '["/bin/echo"] ["a","b"] 0 /bin/echo ["a","b"]\n'
    assert cli("run", "--name", "plain", "busybox")[0] == 0  # the image's CMD, no ENTRYPOINT
    assert cli("inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", "plain")[1] == 'null ["sh"]\n'
    assert cli("rm", "ep", "plain")[0] == 0


def test_image_inspect_lists_every_config_field_as_docker(cli: Run) -> None:
    """busybox has no ENTRYPOINT: Docker still lists it (null), so any image takes the same --format."""
    code, out, _ = cli("inspect", "-f", "{{json .Config.Entrypoint}}|{{.Config.WorkingDir}}|{{.Comment}}", "busybox")
    assert (code, out) == (0, "null||\n")


def test_interactive_in_a_notebook_cell_is_refused_rather_than_hang(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel's ``!`` gives commands a terminal nobody types into: ``run -it`` there would wait for ever."""
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    for args in (["run", "-it", "busybox", "sh"], ["run", "-i", "busybox", "cat"]):
        code, out, err = cli(*args)
        assert (code, out) == (1, "") and "a notebook cell cannot send" in err and err.count("\n") == 1
    assert cli("ps", "-aq") == (0, "", "")  # nothing was created
