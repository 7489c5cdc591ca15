"""Table-driven tests for pycontainers.dockerfile: Docker's parser output typed, errors, $VAR, ARG/ENV scoping.

The corpus under tests/dockerfiles/ holds small Dockerfiles (errors/ holds ones Docker refuses); every file
there must have a row in CORPUS or ERRORS below, so adding a file without an expectation fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontainers.dockerfile import (
    BUILTIN_BUILD_ARGS,
    EXPANDED_KEYWORDS,
    INSTRUCTIONS,
    AddInstruction,
    ArgInstruction,
    BuildArgs,
    CmdInstruction,
    CopyInstruction,
    DockerfileError,
    EntrypointInstruction,
    EnvInstruction,
    ExpansionError,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    Heredoc,
    LabelInstruction,
    Lexer,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
    expand,
    expand_words,
    parse,
    parse_file,
    parse_triggers,
)
from pycontainers.errors import PyContainersError

CORPUS_DIR = Path(__file__).parent / "dockerfiles"

# file -> [(keyword, start_line, end_line), ...] for every instruction in file order
CORPUS: dict[str, list[tuple[str, int, int]]] = {
    "minimal": [("FROM", 1, 1)],
    "continuation_backslash": [("FROM", 1, 1), ("RUN", 2, 4), ("RUN", 5, 5)],
    "continuation_comments": [("FROM", 1, 1), ("RUN", 2, 6), ("CMD", 9, 9)],
    "continuation_at_eof": [("FROM", 1, 1), ("RUN", 2, 2)],
    "continuation_whitespace_after_escape": [("FROM", 1, 1), ("RUN", 2, 3)],
    "escape_backtick": [("FROM", 3, 3), ("COPY", 4, 4), ("RUN", 5, 5), ("RUN", 6, 7)],
    "escape_backslash_windows_paths": [("FROM", 1, 1), ("COPY", 2, 2), ("RUN", 3, 3)],
    "directives": [("FROM", 3, 3), ("RUN", 4, 5)],
    "directive_after_comment": [("FROM", 3, 3), ("RUN", 4, 4)],
    "directive_after_blank_line": [("FROM", 3, 3), ("RUN", 4, 4)],
    "forms": [
        ("FROM", 1, 1), ("RUN", 2, 2), ("RUN", 3, 3), ("CMD", 4, 4), ("CMD", 5, 5), ("ENTRYPOINT", 6, 6),
        ("ENTRYPOINT", 7, 7), ("SHELL", 8, 8), ("CMD", 9, 9), ("ENTRYPOINT", 10, 10), ("CMD", 11, 11),
        ("RUN", 12, 12),
    ],
    "json_escapes": [("FROM", 1, 1), ("CMD", 2, 2)],
    "multistage": [
        ("FROM", 1, 1), ("WORKDIR", 2, 2), ("COPY", 3, 3), ("RUN", 4, 4), ("FROM", 6, 6), ("COPY", 7, 7),
        ("FROM", 9, 9), ("COPY", 10, 10), ("COPY", 11, 11), ("ENTRYPOINT", 12, 12),
    ],
    "arg_before_from": [("ARG", 1, 1), ("ARG", 2, 2), ("FROM", 3, 3), ("ARG", 4, 4), ("RUN", 5, 5)],
    "heredocs": [("FROM", 1, 1), ("RUN", 2, 5), ("RUN", 6, 8), ("COPY", 9, 11), ("COPY", 12, 16), ("RUN", 17, 19)],
    "maintainer_onbuild": [
        ("FROM", 1, 1), ("MAINTAINER", 2, 2), ("ONBUILD", 3, 3), ("ONBUILD", 4, 4), ("ONBUILD", 5, 5),
        ("ONBUILD", 6, 7),
    ],
    "healthcheck": [("FROM", 1, 1), ("HEALTHCHECK", 2, 2), ("HEALTHCHECK", 3, 3), ("HEALTHCHECK", 4, 5),
                    ("HEALTHCHECK", 6, 6)],
    "stopsignal_shell_volume": [
        ("FROM", 1, 1), ("STOPSIGNAL", 2, 2), ("STOPSIGNAL", 3, 3), ("SHELL", 4, 4), ("VOLUME", 5, 5),
        ("VOLUME", 6, 6), ("VOLUME", 7, 7),
    ],
    "labels": [("FROM", 1, 1), ("LABEL", 2, 2), ("LABEL", 3, 5), ("LABEL", 6, 7), ("LABEL", 8, 8)],
    "env_forms": [("FROM", 1, 1), ("ENV", 2, 2), ("ENV", 3, 3), ("ENV", 4, 4), ("ENV", 5, 5)],
    "expose": [("FROM", 1, 1), ("EXPOSE", 2, 2), ("EXPOSE", 3, 3), ("EXPOSE", 4, 4)],
    "crlf": [("FROM", 1, 1), ("RUN", 2, 3), ("CMD", 4, 4)],
    "bom": [("FROM", 2, 2), ("RUN", 3, 4)],
    "lowercase": [("FROM", 1, 1), ("RUN", 2, 2), ("COPY", 3, 3), ("EXPOSE", 4, 4)],
    "unicode": [("FROM", 1, 1), ("LABEL", 2, 2), ("RUN", 3, 3)],
    "blank_lines": [("FROM", 4, 4), ("RUN", 8, 8)],
    "flags": [("FROM", 1, 1), ("RUN", 2, 2), ("COPY", 3, 3), ("COPY", 4, 4), ("ADD", 5, 5), ("ADD", 6, 6),
              ("COPY", 7, 7)],
    "workdir_user": [("FROM", 1, 1), ("WORKDIR", 2, 2), ("WORKDIR", 3, 3), ("USER", 4, 4), ("USER", 5, 5)],
    "comments_everywhere": [("FROM", 2, 2), ("RUN", 4, 4), ("RUN", 5, 7)],
    "docker_docs_env": [("FROM", 1, 1), ("ENV", 2, 2), ("WORKDIR", 3, 3), ("ADD", 4, 4), ("COPY", 5, 5)],
}  # fmt: skip

# errors/<file> -> the exact one-line message
ERRORS: dict[str, str] = {
    "unknown_instruction": "Dockerfile:3: unknown instruction: FORM (did you mean FROM?)",
    "unknown_instruction_no_suggestion": "Dockerfile:2: unknown instruction: XYZZY",
    "unknown_instruction_lowercase": "Dockerfile:2: unknown instruction: runn (did you mean RUN?)",
    "no_from": "Dockerfile:2: no FROM instruction: a Dockerfile needs at least one FROM",
    "instruction_before_from": (
        "Dockerfile:2: RUN before the first FROM: a Dockerfile must start with FROM (only ARG may come before it)"
    ),
    "empty": "Dockerfile:1: the Dockerfile is empty: it holds no instruction",
    "comments_only": "Dockerfile:1: the Dockerfile is empty: it holds no instruction",
    "copy_one_argument": (
        "Dockerfile:2: COPY requires at least two arguments (source and destination), but only one was given"
    ),
    "copy_one_argument_continued": (
        "Dockerfile:3: COPY requires at least two arguments (source and destination), but only one was given"
    ),
    "from_no_argument": (
        "Dockerfile:1: FROM requires either one or three arguments: FROM [--platform=P] IMAGE [AS NAME]"
    ),
    "from_two_arguments": (
        "Dockerfile:1: FROM requires either one or three arguments: FROM [--platform=P] IMAGE [AS NAME]"
    ),
    "bad_stage_name": (
        'Dockerfile:1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols'
    ),
    "bad_stage_name_symbol": (
        'Dockerfile:1: invalid name for build stage: "my@stage", name can\'t start with a number or contain symbols'
    ),
    "duplicate_stage_name": 'Dockerfile:2: duplicate stage name "build"',
    "json_non_string": "Dockerfile:3: when using JSON array syntax, arrays must be comprised of strings only",
    "env_missing_value": "Dockerfile:2: ENV must have two arguments",
    "env_mixed_forms": 'Dockerfile:2: Syntax error - can\'t find = in "c". Must be of the form: name=value',
    "label_continued_missing_value": "Dockerfile:2: LABEL must have two arguments",
    "unterminated_heredoc": "Dockerfile:2: unterminated heredoc",
    # "<< EOF" (with a space) is no heredoc for Docker: the body lines become instructions.
    "heredoc_with_space": "Dockerfile:3: unknown instruction: hello (did you mean SHELL?)",
    "copy_heredoc_destination": "Dockerfile:2: COPY cannot accept a heredoc as a destination",
    "bad_escape_directive": "Dockerfile:1: invalid escape token 'x' does not match ` or \\",
    "duplicate_escape_directive": "Dockerfile:2: only one escape parser directive can be used",
    "onbuild_onbuild": "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    "onbuild_from": "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger",
    "onbuild_empty": "Dockerfile:2: ONBUILD requires at least one argument",
    "onbuild_unknown": "Dockerfile:2: unknown instruction: FORM (did you mean FROM?)",
    "unknown_flag": (
        "Dockerfile:2: COPY: unknown flag --form (known flags: --from, --chown, --chmod, --link, --parents, --exclude)"
    ),
    "flag_without_value": "Dockerfile:2: COPY: missing a value on flag --from (write --from=VALUE)",
    "duplicate_flag": "Dockerfile:2: COPY: duplicate flag --from",
    "flag_on_flagless_instruction": "Dockerfile:2: WORKDIR: unknown flag --x (it takes no flags)",
    "shell_not_json": 'Dockerfile:2: SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]',
    "healthcheck_bad_type": 'Dockerfile:2: unknown type "TEST" in HEALTHCHECK (try CMD)',
    "healthcheck_short_interval": "Dockerfile:2: HEALTHCHECK: --interval cannot be less than 1ms",
    "healthcheck_bad_duration": (
        'Dockerfile:2: HEALTHCHECK: invalid duration "soon" for --timeout (use e.g. 30s, 1m30s, 500ms)'
    ),
    "healthcheck_none_arguments": "Dockerfile:2: HEALTHCHECK NONE takes no arguments",
    "healthcheck_no_command": "Dockerfile:2: missing command after HEALTHCHECK CMD",
    "volume_empty": "Dockerfile:2: VOLUME specified can not be an empty string",
    "user_missing": "Dockerfile:2: USER requires exactly one argument",
    "maintainer_missing": "Dockerfile:2: MAINTAINER requires exactly one argument",
    "run_empty": "Dockerfile:2: RUN requires at least one argument",
    "arg_blank_name": "Dockerfile:2: ARG names can not be blank",
    "nul_byte": "Dockerfile:2: NUL byte in the Dockerfile (is it a binary file?)",
}


def corpus(name: str) -> list:
    return parse_file(CORPUS_DIR / f"{name}.Dockerfile").instructions


def only(text: str) -> object:
    """The one instruction after ``FROM busybox``."""
    instructions = parse("FROM busybox\n" + text).instructions
    assert len(instructions) == 2, instructions
    return instructions[1]


# --- the corpus ---------------------------------------------------------------------------------------


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.stem for p in CORPUS_DIR.glob("*.Dockerfile")) == sorted(CORPUS)
    assert sorted(p.stem for p in (CORPUS_DIR / "errors").glob("*.Dockerfile")) == sorted(ERRORS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_keywords_and_line_numbers(name: str) -> None:
    assert [(i.keyword, i.start_line, i.end_line) for i in corpus(name)] == CORPUS[name]


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_corpus_errors(name: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_file(CORPUS_DIR / "errors" / f"{name}.Dockerfile", filename="Dockerfile")
    assert str(caught.value) == ERRORS[name]
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, PyContainersError)


def test_errors_name_the_file() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile\.dev:2: unknown instruction: RUNN"):
        parse("FROM busybox\nRUNN x\n", filename="Dockerfile.dev")
    with pytest.raises(DockerfileError, match=r"^unknown_instruction\.Dockerfile:3: "):
        parse_file(CORPUS_DIR / "errors" / "unknown_instruction.Dockerfile")


def test_parse_file_missing() -> None:
    with pytest.raises(DockerfileError, match="cannot read the Dockerfile"):
        parse_file(CORPUS_DIR / "does-not-exist")


# --- continuations, comments, directives -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "index", "command"),
    [
        ("continuation_backslash", 1, "echo one     two     three"),
        ("continuation_comments", 1, "apk add --no-cache     gcc     make"),  # comment and empty lines dropped
        ("continuation_at_eof", 1, "echo last"),
        ("continuation_whitespace_after_escape", 1, "echo a     b"),  # spaces after "\" still continue
        ("escape_backtick", 2, "dir c:\\"),  # with ` as escape, "\" is an ordinary character
        ("escape_backtick", 3, "echo one     two"),
        ("escape_backslash_windows_paths", 2, "dir c:"),
        ("directives", 1, "echo a   b"),
        ("directive_after_comment", 1, "echo `"),  # the directive came too late: ` is ordinary
        ("directive_after_blank_line", 1, "echo `"),
        ("bom", 1, "echo a     b"),
        ("crlf", 1, "echo a     b"),
        ("comments_everywhere", 1, "echo a # not a comment: it is part of the command"),
        ("comments_everywhere", 2, "echo   b"),
    ],
)
def test_joined_commands(name: str, index: int, command: str) -> None:
    assert corpus(name)[index].command == (command,)


def test_escaped_escape_at_end_of_line_is_not_a_continuation() -> None:
    # buildkit's parser reads "c:\\" as an escaped backslash, so COPY and RUN stay two instructions (Docker's
    # older documentation shows them joined; the parser is the authority here).
    copy = corpus("escape_backslash_windows_paths")[1]
    assert (copy.sources, copy.dest) == (("testfile.txt",), "c:\\\\")


@pytest.mark.parametrize(
    ("name", "escape", "directives"),
    [
        ("minimal", "\\", {}),
        ("directives", "`", {"syntax": "docker/dockerfile:1", "escape": "`"}),  # key case and spaces are free
        ("escape_backtick", "`", {"escape": "`"}),
        ("bom", "`", {"escape": "`"}),
        ("directive_after_comment", "\\", {}),
        ("directive_after_blank_line", "\\", {}),
    ],
)
def test_directives(name: str, escape: str, directives: dict[str, str]) -> None:
    dockerfile = parse_file(CORPUS_DIR / f"{name}.Dockerfile")
    assert (dockerfile.escape, dockerfile.directives) == (escape, directives)
    assert dockerfile.syntax == directives.get("syntax")


def test_unknown_directive_ends_the_directives() -> None:
    dockerfile = parse("# foo=bar\n# escape=`\nFROM busybox\n")
    assert (dockerfile.escape, dockerfile.directives) == ("\\", {})


# --- exec form and shell form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "cls", "exec_form", "command"),
    [
        (1, RunInstruction, False, ("echo shell form",)),
        (2, RunInstruction, True, ("echo", "exec form")),
        (3, CmdInstruction, True, ("sh", "-c", "echo $HOME")),
        (4, CmdInstruction, False, ("echo $HOME",)),
        (5, EntrypointInstruction, True, ("/bin/sh", "-c")),
        (6, EntrypointInstruction, False, ("exec top -b",)),
        # An invalid JSON array is not an error: Docker runs the text in shell form.
        (8, CmdInstruction, False, ('["unterminated",',)),
        (9, EntrypointInstruction, False, ("['single', 'quotes']",)),
        # Docker decodes the first JSON value and ignores what follows it.
        (10, CmdInstruction, True, ("a",)),
        (11, RunInstruction, True, ()),
    ],
)
def test_exec_and_shell_form(index: int, cls: type, exec_form: bool, command: tuple[str, ...]) -> None:
    instruction = corpus("forms")[index]
    assert isinstance(instruction, cls)
    assert (instruction.exec_form, instruction.shell_form, instruction.command) == (exec_form, not exec_form, command)


def test_shell_instruction() -> None:
    shell = corpus("forms")[7]
    assert isinstance(shell, ShellInstruction)
    assert shell.shell == ("/bin/bash", "-o", "pipefail", "-c")


def test_json_escapes_are_decoded_and_variables_left_alone() -> None:
    cmd = corpus("json_escapes")[1]
    assert cmd.command == ("echo", "tab\there", 'quote"d', "back\\slash", "é", "$HOME")


@pytest.mark.parametrize(
    ("line", "exec_form", "command"),
    [
        ('CMD ["a", "b"]', True, ("a", "b")),
        ('CMD [ "a" ]  ', True, ("a",)),
        ("CMD []", True, ()),
        ('CMD ["a",', False, ('["a",',)),
        ('CMD {"a": 1}', False, ('{"a": 1}',)),
        ('CMD "a"', False, ('"a"',)),
        ("CMD", False, ()),
        ('ENTRYPOINT ["a\\\\b"]', True, ("a\\b",)),
    ],
)
def test_json_form_table(line: str, exec_form: bool, command: tuple[str, ...]) -> None:
    instruction = only(line)
    assert (instruction.exec_form, instruction.command) == (exec_form, command)


# --- stages and ARG before FROM ------------------------------------------------------------------------


def test_multistage() -> None:
    dockerfile = parse_file(CORPUS_DIR / "multistage.Dockerfile")
    assert [(s.index, s.name, s.image) for s in dockerfile.stages] == [
        (0, "build", "golang:1.22"),
        (1, "test", "alpine:3.19"),  # stage names are lower-cased
        (2, None, "scratch"),
    ]
    assert [len(s.instructions) for s in dockerfile.stages] == [3, 1, 3]
    copies = [i for i in dockerfile.instructions if isinstance(i, CopyInstruction)]
    assert [c.from_ref for c in copies] == [None, "build", "0", "test"]
    assert [dockerfile.stage_index(c.from_ref) for c in copies[1:]] == [0, 0, 1]


@pytest.mark.parametrize(
    ("ref", "index"),
    [("build", 0), ("BUILD", 0), ("Test", 1), ("0", 0), (2, 2), ("2", 2), ("3", None), ("alpine:3", None), ("", None)],
)
def test_stage_index(ref: str | int, index: int | None) -> None:
    assert parse_file(CORPUS_DIR / "multistage.Dockerfile").stage_index(ref) == index


def test_args_before_from() -> None:
    dockerfile = parse_file(CORPUS_DIR / "arg_before_from.Dockerfile")
    assert [a.pairs for a in dockerfile.args_before_from] == [(("TAG", "1.36"),), (("BASE", "busybox"),)]
    stage = dockerfile.stages[0]
    assert stage.image == "${BASE}:${TAG}"
    args = BuildArgs()
    for arg in dockerfile.args_before_from:
        args.declare_global(arg)
    assert args.base_image(stage) == "busybox:1.36"
    scope = args.stage()
    assert scope.expand("$TAG") == ""  # a global ARG is not visible inside the stage...
    scope.declare(stage.instructions[0])
    assert scope.expand("$TAG") == "1.36"  # ...until the stage declares it again without a value


def test_from_flags_and_name() -> None:
    head = corpus("flags")[0]
    assert isinstance(head, FromInstruction)
    assert (head.image, head.stage_name, head.platform) == ("busybox", "base", "$BUILDPLATFORM")
    lower = corpus("lowercase")[0]
    assert (lower.keyword, lower.image, lower.stage_name) == ("FROM", "busybox", "base")


# --- heredocs ---------------------------------------------------------------------------------------------


def test_heredocs() -> None:
    ins = corpus("heredocs")
    assert ins[1].command == ("<<EOF",)
    assert ins[1].heredocs == (Heredoc(name="EOF", content="echo hello\necho world\n"),)
    assert ins[2].heredocs == (Heredoc(name="EOT", content="\techo indented\n", chomp=True),)
    assert ins[2].heredocs[0].body == "echo indented\n"  # <<- strips leading tabs
    motd = ins[3]
    assert isinstance(motd, CopyInstruction)
    assert (motd.sources, motd.dest) == ((), "/etc/motd")
    assert motd.inline_files == (Heredoc(name="EOF", content="Welcome to $HOSTNAME\n"),)
    two = ins[4]
    assert two.inline_files == (
        Heredoc(name="EOF", content="literal $HOME\n", expand=False),  # quoted delimiter: no expansion
        Heredoc(name="CONF", content="key=value\n"),
    )
    assert ins[5].heredocs == (Heredoc(name="IN", content="from fd 3\n", fd=3),)


@pytest.mark.parametrize(
    ("first_line", "name", "chomp", "expand"),
    [
        ("RUN <<EOF", "EOF", False, True),
        ("RUN <<-EOF", "EOF", True, True),
        ('RUN <<"EOF"', "EOF", False, False),
        ("RUN <<'EOF'", "EOF", False, False),
        ('RUN <<-"EOF"', "EOF", True, False),
        ("RUN <<E'O'F", "EOF", False, False),  # quoting any part of the delimiter turns expansion off
        ("RUN <<E\\OF", "EOF", False, True),  # buildkit counts quote characters only: a backslash is no quote
        ("COPY <<FILE /f", "FILE", False, True),
        ("ADD <<FILE /f", "FILE", False, True),
    ],
)
def test_heredoc_delimiters(first_line: str, name: str, chomp: bool, expand: bool) -> None:
    doc = only(f"{first_line}\nbody\n{name}\n").heredocs[0]
    assert (doc.name, doc.chomp, doc.expand, doc.content) == (name, chomp, expand, "body\n")


def test_heredocs_only_for_run_copy_add() -> None:
    # CMD <<EOF is no heredoc for Docker: the next line is read as an instruction.
    with pytest.raises(DockerfileError, match=r"^Dockerfile:3: unknown instruction: hi"):
        parse("FROM busybox\nCMD <<EOF\nhi\nEOF\n")


def test_copy_mixes_paths_and_heredocs() -> None:
    copy = only("COPY a.txt <<EOF b.txt /dst/\ninline\nEOF\n")
    assert (copy.sources, copy.dest) == (("a.txt", "b.txt"), "/dst/")
    assert copy.inline_files == (Heredoc(name="EOF", content="inline\n"),)


# --- instruction by instruction ---------------------------------------------------------------------


def test_maintainer_and_onbuild() -> None:
    ins = corpus("maintainer_onbuild")
    assert isinstance(ins[1], MaintainerInstruction) and ins[1].maintainer == "Jane Doe <jane@example.com>"
    add = ins[2]
    assert isinstance(add, OnbuildInstruction)
    assert isinstance(add.trigger, AddInstruction)
    assert (add.trigger.sources, add.trigger.dest, add.expression) == ((".",), "/app/src", "ADD . /app/src")
    assert ins[3].trigger.exec_form and ins[3].trigger.command == ("make", "-C", "/app/src")
    copy = ins[4].trigger
    assert isinstance(copy, CopyInstruction)
    assert (copy.from_ref, copy.chown, copy.sources, copy.dest) == ("builder", "app:app", ("/out",), "/app")
    assert ins[4].expression == "COPY --from=builder --chown=app:app /out /app"
    lower = ins[5]
    assert (lower.keyword, lower.trigger.keyword, lower.trigger.command) == ("ONBUILD", "RUN", ("echo     lowercase",))
    assert (lower.start_line, lower.end_line) == (lower.trigger.start_line, lower.trigger.end_line) == (6, 7)


def test_onbuild_heredoc_and_triggers_round_trip() -> None:
    onbuild = only("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert onbuild.trigger.heredocs == (Heredoc(name="EOF", content="echo hi\n"),)
    again = parse_triggers([onbuild.expression, "COPY --from=build a b"])
    assert [t.keyword for t in again] == ["RUN", "COPY"]
    assert again[0].heredocs == onbuild.trigger.heredocs
    assert again[1].from_ref == "build"
    with pytest.raises(DockerfileError, match=r"^ONBUILD:2: FROM isn't allowed as an ONBUILD trigger"):
        parse_triggers(["RUN true", "FROM x"])


def test_healthcheck() -> None:
    ins = corpus("healthcheck")
    assert [i.test for i in ins[1:]] == [
        ("NONE",),
        ("CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"),
        ("CMD", "wget", "-q", "http://localhost/"),
        ("CMD-SHELL", "true"),
    ]
    full = ins[3]
    assert isinstance(full, HealthcheckInstruction)
    second = 1_000_000_000
    assert (full.interval, full.timeout, full.start_period, full.start_interval, full.retries) == (
        30 * second, 3 * second, 90 * second, second // 2, 3,
    )  # fmt: skip
    assert ins[4].interval == 0 and ins[1].interval is None


@pytest.mark.parametrize(
    ("flag", "ns"),
    [("1s", 10**9), ("1.5h", 5400 * 10**9), ("2m3s", 123 * 10**9), ("1ms", 10**6), ("+5s", 5 * 10**9)],
)
def test_healthcheck_durations(flag: str, ns: int) -> None:
    assert only(f"HEALTHCHECK --timeout={flag} CMD true").timeout == ns


def test_stopsignal_shell_volume() -> None:
    ins = corpus("stopsignal_shell_volume")
    assert isinstance(ins[1], StopsignalInstruction) and [ins[1].signal, ins[2].signal] == ["SIGKILL", "9"]
    assert ins[3].shell == ("/bin/sh", "-ec")
    assert isinstance(ins[4], VolumeInstruction)
    assert [(v.exec_form, v.paths) for v in ins[4:]] == [
        (True, ("/data", "/logs")),
        (False, ("/cache", "/tmp/x")),
        (False, ("$DATA",)),
    ]


def test_labels() -> None:
    ins = corpus("labels")
    assert all(isinstance(i, LabelInstruction) for i in ins[1:])
    assert [i.pairs for i in ins[1:]] == [
        (("a", "b"), ('"c d"', "e")),  # quotes stay until expansion
        (("multi.label1", '"value1"'), ("multi.label2", '"value2"'), ("other", "value3")),
        (("description", '"This text illustrates that label-values can span multiple lines."'),),
        (("legacy", "value with spaces"),),
    ]
    env: dict[str, str] = {}
    assert [(expand(k, env), expand(v, env)) for k, v in ins[1].pairs] == [("a", "b"), ("c d", "e")]


def test_env_forms() -> None:
    ins = corpus("env_forms")
    assert all(isinstance(i, EnvInstruction) for i in ins[1:])
    assert [(i.pairs, i.legacy) for i in ins[1:]] == [
        ((("a", "b"), ("c", "d")), False),
        ((("legacy", "value with spaces"),), True),
        ((("e", '"f g"'), ("h", "i\\ j")), False),
        ((("empty", ""),), False),
    ]
    assert [expand(v, {}) for _, v in ins[3].pairs] == ["f g", "i j"]


def test_expose() -> None:
    ins = corpus("expose")
    assert isinstance(ins[1], ExposeInstruction)
    assert [i.ports for i in ins[1:]] == [("80/tcp", "53/udp"), ("8080",), ("${PORT}",)]
    assert expand_words(ins[3].ports[0], {"PORT": "80 443/udp"}) == ["80", "443/udp"]


def test_workdir_and_user_take_the_whole_rest_of_the_line() -> None:
    ins = corpus("workdir_user")
    assert isinstance(ins[1], WorkdirInstruction) and isinstance(ins[3], UserInstruction)
    assert [ins[1].path, ins[2].path, ins[3].user, ins[4].user] == ["/a b", "relative", "app:app", "$UID"]


def test_trailing_hash_is_not_a_comment() -> None:
    # Docker's documentation writes "WORKDIR ${FOO}   # WORKDIR /bar" to explain; in a Dockerfile the "#" and
    # what follows are arguments, only a "#" at the start of a line starts a comment.
    ins = corpus("docker_docs_env")
    assert ins[2].path == "${FOO}   # WORKDIR /bar"
    assert (ins[3].sources, ins[3].dest) == ((".", "$FOO", "#", "ADD", "."), "/bar")
    assert expand(ins[4].sources[0], {"FOO": "/bar"}) == "$FOO"  # \$ is an escaped dollar


def test_flags() -> None:
    ins = corpus("flags")
    run = ins[1]
    assert run.multi_flags == {"mount": ("type=cache,target=/root/.cache", "type=tmpfs,target=/tmp")}
    assert run.flags == {"network": "none"} and run.command == ("echo cached",)
    copy = ins[2]
    assert copy.flags == {"chown": "1000:1000", "chmod": "0644", "link": "true"}
    assert (copy.chown, copy.chmod, copy.exec_form, copy.sources, copy.dest) == (
        "1000:1000", "0644", True, ("my file",), "/dst/",
    )  # fmt: skip
    assert ins[3].flags == {"link": "false"}
    assert ins[4].checksum.startswith("sha256:") and ins[4].sources == ("https://example.com/a.tar.gz",)
    assert ins[5].flags == {"keep-git-dir": "true"}
    assert ins[6].multi_flags == {"exclude": ("*.tmp", "*.log")}
    assert ins[1].raw_flags == (
        "--mount=type=cache,target=/root/.cache",
        "--mount=type=tmpfs,target=/tmp",
        "--network=none",
    )


@pytest.mark.parametrize(("flags", "message"), [
    ("--mount=type=bogus", 'unsupported mount type "bogus"'),
    ("--network=bogus", 'unsupported network mode "bogus"'),
    ("--security=weird", 'unsupported security mode "weird"'),
])
def test_run_flags_with_values_buildkit_refuses_are_refused(flags: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=f"Dockerfile:2: {message}"):
        parse(f"FROM busybox\nRUN {flags} true\n")
    parse("FROM busybox\nRUN --mount=type=cache,target=/c --mount=target=/b --network=host --security=sandbox true\n")


def test_unicode() -> None:
    label = corpus("unicode")[1]
    assert [(expand(k, {}), expand(v, {})) for k, v in label.pairs] == [("description", "café ☕"), ("名前", "値")]


def test_arg_pairs() -> None:
    arg = only("ARG a b=c d= e=\"x y\" f='$z'")
    assert isinstance(arg, ArgInstruction)
    assert arg.pairs == (("a", None), ("b", "c"), ("d", ""), ("e", '"x y"'), ("f", "'$z'"))


def test_instruction_error_and_location() -> None:
    run = parse("FROM busybox\n\nRUN false\n").instructions[1]
    assert run.location == "Dockerfile:3"
    error = run.error("the command returned a non-zero code: 1")
    assert isinstance(error, DockerfileError)
    assert str(error) == "Dockerfile:3: the command returned a non-zero code: 1"


def test_constants() -> None:
    assert "FROM" in INSTRUCTIONS and "MAINTAINER" in INSTRUCTIONS and "ONBUILD" in INSTRUCTIONS
    assert len(INSTRUCTIONS) == 18
    assert {"RUN", "CMD", "ENTRYPOINT", "ONBUILD", "SHELL", "HEALTHCHECK"}.isdisjoint(EXPANDED_KEYWORDS)
    assert {"FROM", "ENV", "ARG", "COPY", "ADD", "EXPOSE", "WORKDIR", "USER"} <= EXPANDED_KEYWORDS
    assert "HTTP_PROXY" in BUILTIN_BUILD_ARGS and "no_proxy" in BUILTIN_BUILD_ARGS


# --- expand: Docker's ProcessWord -------------------------------------------------------------------

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (word, expected or None for an error) in the spirit of moby's envVarTest table, env = ENV
EXPAND_TABLE: list[tuple[str, str | None]] = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", None),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", None),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', None),
    ('"hello\\"', None),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", None),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ("\"''\"", "''"),
    ("$.", "$."),
    ("$", "$"),
    ("$1", ""),
    ("he$1x", "hex"),
    ("he$12x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),  # names are case-sensitive
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("he\\${}xx", "he${}xx"),
    ("${}", None),
    ("he${}xx", None),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", None),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", None),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ("\"he'$PWD'\"", "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("he${PWD", None),
    ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안녕$KOREAN", "안녕한국어"),
    ("안'녕'하세요", "안녕하세요"),
    ("${{aaa}", None),
    ("${aaa}}", "}"),
    ("${aaa", None),
    ("${aaa:-bbb}}", "bbb}"),
    ("${aaa:-bbb", None),
    ("${aaa:-${bbb:-ccc}}", "ccc"),
    ("${aaa:-bbb ${foo}", None),
    ("${aaa:-bbb {foo}", "bbb {foo"),
    ("${:}", None),
    ("${:-bbb}", None),
    ("${:+bbb}", None),
    ("a b  c", "a b  c"),  # ProcessWord keeps inner whitespace
]


@pytest.mark.parametrize(("word", "expected"), EXPAND_TABLE)
def test_expand_table(word: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ExpansionError, match=r"^failed to process "):
            expand(word, ENV)
    else:
        assert expand(word, ENV) == expected


# (word, env, expected): every operator, unset versus empty
OPERATORS: list[tuple[str, dict[str, str], str]] = [
    ("$V ${V}", {"V": "x"}, "x x"),
    ("[$V]", {}, "[]"),  # unknown variables expand to ""
    ("${V-def}", {}, "def"),
    ("${V-def}", {"V": ""}, ""),  # - : only when unset
    ("${V-def}", {"V": "x"}, "x"),
    ("${V:-def}", {}, "def"),
    ("${V:-def}", {"V": ""}, "def"),  # :- : unset or empty
    ("${V:-def}", {"V": "x"}, "x"),
    ("${V+alt}", {}, ""),
    ("${V+alt}", {"V": ""}, "alt"),  # + : when set, even empty
    ("${V+alt}", {"V": "x"}, "alt"),
    ("${V:+alt}", {}, ""),
    ("${V:+alt}", {"V": ""}, ""),  # :+ : when set and not empty
    ("${V:+alt}", {"V": "x"}, "alt"),
    ("${V?msg}", {"V": ""}, ""),
    ("${V:?msg}", {"V": "x"}, "x"),
    ("${V:-}", {}, ""),
    ("${V#*/}", {"V": "a/b/c"}, "b/c"),
    ("${V##*/}", {"V": "a/b/c"}, "c"),
    ("${V%/*}", {"V": "a/b/c"}, "a/b"),
    ("${V%%/*}", {"V": "a/b/c"}, "a"),
    ("${V#x}", {"V": "abc"}, "abc"),
    ("${V#?\\?}", {"V": "???y"}, "?y"),
    ("${V%%\\**\\*}", {"V": "a***yy*"}, "a"),
    ("${V/b/X}", {"V": "abcabc"}, "aXcabc"),
    ("${V//b/X}", {"V": "abcabc"}, "aXcaXc"),
    ("${V//\\//\\/}", {"V": "/tmp/f"}, "\\/tmp\\/f"),
    ("${V/$N/}", {"V": "xxyy", "N": ""}, "xxyy"),
    ("${V/$N/ww}", {"V": "xxyy", "N": ""}, "wwxxyy"),
    ("${V///}", {}, ""),
    ("${V/http:\\/\\//https:\\/\\/}", {"V": "http://x"}, "https:\\/\\/x"),
    ("something-${VERSION}.${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tar.gz", {"VERSION": "v1", "OS": "linux",
     "ARCH": "arm", "VARIANT": "v7"}, "something-v1.linux-arm-v7.tar.gz"),
    ("$a$b", {"a": "1", "b": "2"}, "12"),
    ("${a}_b", {"a": "1", "a_b": "no"}, "1_b"),
    ("$a_b", {"a": "1", "a_b": "yes"}, "yes"),
]  # fmt: skip


@pytest.mark.parametrize(("word", "env", "expected"), OPERATORS)
def test_expand_operators(word: str, env: dict[str, str], expected: str) -> None:
    assert expand(word, env) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${V?}", {}, 'failed to process "${V?}": V: is not allowed to be unset'),
        ("${V?must be set}", {}, 'failed to process "${V?must be set}": V: must be set'),
        ("${V:?}", {"V": ""}, 'failed to process "${V:?}": V: is not allowed to be empty'),
        ("${V:?need $X}", {"X": "it"}, 'failed to process "${V:?need $X}": V: need it'),
        ("${V=x}", {}, 'failed to process "${V=x}": unsupported modifier (=) in substitution'),
        ("${V", {}, "failed to process \"${V\": syntax error: missing '}'"),
        ("${}", {}, 'failed to process "${}": syntax error: bad substitution'),
        ("${V//x}", {}, "failed to process \"${V//x}\": syntax error: missing '/' in ${}"),
        ("${V#\\x}", {"V": "a"}, "failed to process \"${V#\\x}\": invalid pattern (\\x) in substitution: invalid "
                                 "escape '\\x'"),
        ("'open", {}, "failed to process \"'open\": unexpected end of statement while looking for matching "
                      "single-quote"),
    ],
)  # fmt: skip
def test_expand_errors(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ExpansionError) as caught:
        expand(word, env)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("`$V", "$V"),  # backtick escapes with # escape=`
        ("`$V`", "$V"),
        ("c:\\path\\$V", "c:\\path\\x"),  # backslash is ordinary
        ('"a`"b"', 'a"b'),
        ('"c:\\$V"', "c:\\x"),
        ("``", "`"),
    ],
)
def test_expand_backtick_escape(word: str, expected: str) -> None:
    assert expand(word, {"V": "x"}, escape="`") == expected


@pytest.mark.parametrize(
    ("word", "env", "words"),
    [
        ("a b  c", {}, ["a", "b", "c"]),
        ("$PORTS", {"PORTS": "80 443/udp"}, ["80", "443/udp"]),  # split after substitution
        ('"$PORTS"', {"PORTS": "80 443"}, ["80 443"]),  # quoted: one word
        ("'a b' c", {}, ["a b", "c"]),
        ("a\\ b", {}, ["a b"]),  # escaped space
        ('"" x', {}, ["x"]),  # an empty quoted string makes no word
        ("${X:-1 2}", {}, ["1", "2"]),
        ("  ", {}, []),
        ("x$EMPTY y", {"EMPTY": ""}, ["x", "y"]),
    ],
)
def test_expand_words(word: str, env: dict[str, str], words: list[str]) -> None:
    assert expand_words(word, env) == words


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('echo "$A"\n', 'echo "1"\n'),  # quotes stay (COPY heredoc bodies, moby/buildkit#2442)
        ("it's $A\n", "it's 1\n"),  # an apostrophe is no quote
        ("'$A'", "'1'"),  # single quotes do not stop substitution in a body
        ("\\$A", "$A"),  # escapes are processed
        ("$MISSING.", "."),
    ],
)
def test_expand_shell_form(body: str, expected: str) -> None:
    assert expand(body, {"A": "1"}, shell_form=True) == expected


@pytest.mark.parametrize(
    ("lexer", "word", "expected"),
    [
        (Lexer(raw_quotes=True), "'a' \"$V\"", "'a' \"x\""),
        (Lexer(raw_escapes=True), "a\\ b", "a\\ b"),
        (Lexer(skip_unset_env=True), "$V $U ${U} ${U:-d} ${U/a/b}", "x $U ${U} ${U:-d} ${U/a/b}"),
        (Lexer(skip_process_quotes=True), "'$V'", "'x'"),
    ],
)
def test_lexer_modes(lexer: Lexer, word: str, expected: str) -> None:
    assert lexer.process_word(word, {"V": "x"}) == expected


# --- ARG and ENV scoping ------------------------------------------------------------------------------


def build(text: str, overrides: dict[str, str] | None = None, image_env: dict[str, str] | None = None):
    """Run the ARG/ENV bookkeeping of the first stage; return (BuildArgs, StageScope, Dockerfile)."""
    dockerfile = parse(text)
    args = BuildArgs(overrides, escape=dockerfile.escape)
    for arg in dockerfile.args_before_from:
        args.declare_global(arg)
    scope = args.stage(image_env or {})
    for ins in dockerfile.stages[0].instructions:
        if isinstance(ins, ArgInstruction):
            scope.declare(ins)
        elif isinstance(ins, EnvInstruction):
            scope.set_env(ins)
    return args, scope, dockerfile


def test_global_arg_in_from_with_and_without_build_arg() -> None:
    text = "ARG TAG=1.36\nFROM busybox:${TAG}\n"
    args, _, dockerfile = build(text)
    assert args.base_image(dockerfile.stages[0]) == "busybox:1.36"
    args, _, dockerfile = build(text, {"TAG": "musl"})
    assert args.base_image(dockerfile.stages[0]) == "busybox:musl"


def test_global_arg_defaults_see_earlier_globals_and_overrides() -> None:
    args, _, _ = build("ARG A=1\nARG B=${A}2\nFROM x\n", {"A": "9"})
    assert args.global_env() == {"A": "9", "B": "92"}


def test_blank_base_image() -> None:
    args, _, dockerfile = build("ARG IMG\nFROM ${IMG}\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: base name \(\$\{IMG\}\) should not be blank$"):
        args.base_image(dockerfile.stages[0])


def test_global_arg_invisible_in_stage_unless_redeclared() -> None:
    _, scope, _ = build("ARG V=global\nFROM x\n")
    assert scope.expand("[$V]") == "[]"
    _, scope, _ = build("ARG V=global\nFROM x\nARG V\n")
    assert scope.expand("[$V]") == "[global]"
    _, scope, _ = build("ARG V=global\nFROM x\nARG V=stage\n")
    assert scope.expand("[$V]") == "[stage]"
    _, scope, _ = build("ARG V=global\nFROM x\nARG V\n", {"V": "cli"})
    assert scope.expand("[$V]") == "[cli]"


def test_build_arg_overrides_arg_default() -> None:
    _, scope, _ = build("FROM x\nARG V=default\n", {"V": "cli"})
    assert scope.expand("$V") == "cli"
    _, scope, _ = build("FROM x\nARG V=default\n")
    assert scope.expand("$V") == "default"


def test_build_arg_without_arg_is_not_visible() -> None:
    _, scope, _ = build("FROM x\n", {"V": "cli"})
    assert scope.expand("[$V]") == "[]"


def test_arg_without_default_is_unset_not_empty() -> None:
    _, scope, _ = build("FROM x\nARG V\n")
    assert scope.expand("${V-unset}") == "unset"
    _, scope, _ = build("FROM x\nARG V=\n")
    assert scope.expand("${V-unset}") == ""


def test_env_wins_over_arg() -> None:
    _, scope, _ = build("FROM x\nARG V=arg\nENV V=env\n", {"V": "cli"})
    assert scope.expand("$V") == "env"
    assert "V" not in scope.run_env()
    _, scope, _ = build("FROM x\nENV V=env\nARG V=arg\n")
    assert scope.expand("$V") == "env"
    _, scope, _ = build("FROM x\nARG PATH=/arg\n", image_env={"PATH": "/usr/bin"})  # the base image's ENV too
    assert scope.expand("$PATH") == "/usr/bin"


def test_env_line_sees_values_from_before_it() -> None:
    # Docker's documented example: def gets the value abc had before the line.
    _, scope, _ = build("FROM x\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert scope.env == {"abc": "bye", "def": "hello", "ghi": "bye"}
    assert scope.env_list() == ["abc=bye", "def=hello", "ghi=bye"]


def test_env_keeps_its_place_when_set_again() -> None:
    _, scope, _ = build("FROM x\nENV A=1 B=2\nENV A=3\n", image_env={"PATH": "/bin"})
    assert scope.env_list() == ["PATH=/bin", "A=3", "B=2"]


def test_env_and_arg_expansion_with_quotes() -> None:
    _, scope, _ = build("FROM x\nARG WHO=world\nENV GREETING=\"hello $WHO\" RAW='$WHO' esc=\\$WHO\n")
    assert scope.env == {"GREETING": "hello world", "RAW": "$WHO", "esc": "$WHO"}


def test_arg_default_uses_env_and_earlier_args() -> None:
    _, scope, _ = build("FROM x\nENV E=e\nARG A=1\nARG B=${A}-${E}\n")
    assert scope.expand("$B") == "1-e"
    # the classic builder expands one ARG line at once: B does not see the A of the same line
    _, scope, _ = build("FROM x\nARG A=1 B=[$A]\n")
    assert scope.expand("$A $B") == "1 []"
    args, _, _ = build("ARG A=1 B=[$A]\nFROM x\n")
    assert args.global_env() == {"A": "1", "B": "[]"}


def test_run_env_gets_args_but_image_env_does_not() -> None:
    _, scope, _ = build("FROM x\nARG A=1\nENV E=2\n", {"HTTP_PROXY": "http://proxy:3128"})
    assert scope.run_env() == {"A": "1", "HTTP_PROXY": "http://proxy:3128"}
    assert scope.env == {"E": "2"}
    assert scope.expansion_env() == {"A": "1", "HTTP_PROXY": "http://proxy:3128", "E": "2"}


def test_unused_build_args_warning() -> None:
    args, _, _ = build("ARG USED_IN_FROM=1\nFROM x\nARG USED\n", {"USED": "1", "USED_IN_FROM": "2", "ZED": "3",
                       "EXTRA": "4", "https_proxy": "p"})  # fmt: skip
    assert args.unused() == ["EXTRA", "ZED"]
    assert args.warnings() == ["[Warning] One or more build-args [EXTRA ZED] were not consumed"]
    args, _, _ = build("FROM x\nARG A\n", {"A": "1"})
    assert args.warnings() == []


def test_each_stage_starts_without_the_previous_stage_args() -> None:
    dockerfile = parse("FROM x AS one\nARG V=1\nFROM y\nRUN echo $V\n")
    args = BuildArgs()
    first = args.stage()
    first.declare(dockerfile.stages[0].instructions[0])
    assert first.expand("$V") == "1"
    assert args.stage().expand("[$V]") == "[]"


def test_scope_uses_the_dockerfile_escape() -> None:
    _, scope, _ = build("# escape=`\nFROM x\nARG V=1\n")
    assert scope.expand("`$V $V c:\\") == "$V 1 c:\\"


def test_image_env_as_a_list() -> None:
    scope = BuildArgs().stage(["PATH=/usr/bin:/bin", "EMPTY=", "A=b=c"])
    assert scope.env == {"PATH": "/usr/bin:/bin", "EMPTY": "", "A": "b=c"}


def test_declare_returns_resolved_values() -> None:
    dockerfile = parse("ARG G=g\nFROM x\nARG G\nARG L=${G}l\nARG N\n")
    args = BuildArgs({"N": "cli"})
    args.declare_global(dockerfile.args_before_from[0])
    scope = args.stage()
    assert scope.declare(dockerfile.stages[0].instructions[0]) == [("G", "g")]
    assert scope.declare(dockerfile.stages[0].instructions[1]) == [("L", "gl")]
    assert scope.declare(dockerfile.stages[0].instructions[2]) == [("N", "cli")]
