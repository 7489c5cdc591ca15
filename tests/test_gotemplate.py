"""pycontainers.gotemplate against Go's text/template semantics (each expectation is what Go, with Docker's
template functions, prints for the same template and JSON-decoded data), and --format end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pycontainers.gotemplate import DOCKER_FUNCS, Template, TemplateError, go_float, go_text, render
from pycontainers.tables import Table

Run = Callable[..., tuple[int, str, str]]

DATA: dict[str, Any] = {
    "Name": "/web",
    "State": {"Running": True, "Status": "running", "Pid": 42, "ExitCode": 0, "Health": None},
    "Config": {"Labels": {"com.example": "yes", "tier": "front"}, "Env": ["A=1", "B=2"], "Cmd": ["sh"],
               "Entrypoint": None},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "app": {"IPAddress": "10.0.0.2"}}},
    "Mounts": [],
    "RepoTags": ["busybox:latest", "busybox:1.36"],
    "Size": 4261550,
    "Ratio": 0.5,
    "Empty": "",
    "Zero": 0,
}


def run(template: str, data: Any = DATA, missing_key: str = "default") -> str:
    return render(template, data, funcs=DOCKER_FUNCS, missing_key=missing_key)


CASES = [
    # text, fields, printing
    ("plain text", "plain text"),
    ("{{.Name}}", "/web"),
    ("{{.State.Pid}} {{.State.Running}} {{.Ratio}}", "42 true 0.5"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[com.example:yes tier:front]"),
    ("{{.Config.Entrypoint}}", "<no value>"),
    ("{{print .Config.Entrypoint}}", "<nil>"),
    ("{{.Nope}}", "<no value>"),  # Go's default missingkey
    ("{{.Mounts}}", "[]"),
    ("{{1000000.0}} {{1e-5}} {{123456.0}} {{2.50}}", "1e+06 1e-05 123456 2.5"),
    ("{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{'a'}} {{-7}} {{+3}}", "31 15 15 5 1000 97 -7 3"),
    ('{{"a\\tb\\u00e9\\x41"}}|{{`raw\\n`}}', "a\tbéA|raw\\n"),
    ("{{true}} {{false}}", "true false"),
    # trim markers and comments
    ("a  {{- .Name -}}  b", "a/webb"),
    ("a {{- 3}}", "a3"),
    ("{{3 -}} b", "3b"),
    ("x{{/* a comment */}}y", "xy"),
    ("x {{- /* trimmed */ -}} \n y", "xy"),
    ("{{-3}}", "-3"),  # no space after the dash: a negative number, not a trim marker
    # variables
    ("{{$x := .State.Pid}}{{$x}}", "42"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{$.Name}}", "/web"),
    ("{{with .State}}{{$.Name}} {{.Status}}{{end}}", "/web running"),
    ("{{$n := .NetworkSettings}}{{$n.Networks.app.IPAddress}}", "10.0.0.2"),
    ("{{range $i, $v := .RepoTags}}{{$i}}:{{$v}} {{end}}", "0:busybox:latest 1:busybox:1.36 "),
    ("{{range $v := .RepoTags}}{{$v}};{{end}}", "busybox:latest;busybox:1.36;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "com.example=yes,tier=front,"),
    ("{{$x := 0}}{{range .RepoTags}}{{$x = .}}{{end}}{{$x}}", "busybox:1.36"),  # = assigns the outer $x
    # if / else if / else
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Empty}}a{{else if .Zero}}b{{else if .Mounts}}c{{else}}d{{end}}", "d"),
    ("{{if .Config.Entrypoint}}x{{else}}nil is false{{end}}", "nil is false"),
    ("{{if .Config.Labels}}labels{{end}}", "labels"),
    ("{{if and .State.Running (eq .State.Status \"running\")}}ok{{end}}", "ok"),
    ("{{if not .Mounts}}no mounts{{end}}", "no mounts"),
    # range
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.0.0.2 172.17.0.2 "),  # sorted keys
    ("{{range .Mounts}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Entrypoint}}x{{else}}nil ranges as empty{{end}}", "nil ranges as empty"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .RepoTags}}{{if eq . \"busybox:1.36\"}}{{break}}{{end}}{{.}}{{end}}", "busybox:latest"),
    ("{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}", "busybox:1.36"),
    ("{{range .Config.Env}}{{println .}}{{end}}", "A=1\nB=2\n"),
    # with
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
    ("{{with .Empty}}x{{else with .Name}}{{.}}{{end}}", "/web"),
    # pipelines and parentheses
    ("{{.State.Status | printf \"%s!\"}}", "running!"),
    ("{{.State.Status | upper | printf \"<%s>\"}}", "<RUNNING>"),
    ("{{(index .RepoTags 1) | upper}}", "BUSYBOX:1.36"),
    ("{{printf \"%d-%d\" (len .RepoTags) (len .Name)}}", "2-4"),
    ("{{(.NetworkSettings.Networks).app.IPAddress}}", "10.0.0.2"),
    # builtins
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"z\"}} {{or 0 \"\"}} {{not 0}}", "0 2 z  true"),
    ("{{len .Name}} {{len .RepoTags}} {{len .Config.Labels}} {{len \"é\"}} {{len .Config.Entrypoint}}", "4 2 2 2 0"),
    ('{{index .Config.Labels "com.example"}}|{{index .Config.Labels "nope"}}|', "yes||"),
    ("{{index .RepoTags 1}} {{index .NetworkSettings.Networks \"app\" \"IPAddress\"}}", "busybox:1.36 10.0.0.2"),
    ("{{index \"abc\" 1}}", "98"),  # a byte, as Go
    ("{{slice .RepoTags 1}} {{slice \"hello\" 1 3}} {{slice .RepoTags 0 1}}", "[busybox:1.36] el [busybox:latest]"),
    ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
    ("{{println 1 \"a\"}}", "1 a\n"),
    ("{{printf \"%5.1f|%-4d|%04d|%x|%X|%o|%q|%v|%T|%t|%c|%%\" 3.14159 7 42 255 255 8 \"hi\" .RepoTags 1.5 true 65}}",
     "  3.1|7   |0042|ff|FF|10|\"hi\"|[busybox:latest busybox:1.36]|float64|true|A|%"),
    ("{{printf \"%s %d\" .Name}}", "/web %!d(MISSING)"),
    ("{{printf \"%d\" .Name}}", "%!d(string=/web)"),
    ("{{printf \"%s\" 1 2}}", "%!s(int=1)%!(EXTRA int=2)"),
    ("{{printf \"%6s|%-6s|%.2s\" \"ab\" \"ab\" \"abc\"}}", "    ab|ab    |ab"),
    ("{{printf \"%v\" .Config.Labels}}", "map[com.example:yes tier:front]"),
    ("{{eq .State.Pid 42}} {{eq .State.Status \"exited\" \"running\"}} {{ne 1 2}}", "true true true"),
    ("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}", "true true true false"),
    ("{{html \"<a href='x'>&</a>\"}}", "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
    ("{{js \"it's <b>\"}}", "it\\'s \\u003Cb\\u003E"),
    ("{{urlquery \"a b&c=d/é\"}}", "a+b%26c%3Dd%2F%C3%A9"),
    # Docker's functions
    ("{{json .Config.Env}} {{json .Name}} {{json .State.Health}}", '["A=1","B=2"] "/web" null'),
    ('{{json "<a&b>"}}', '"<a&b>"'),  # no HTML escaping, as Docker's json
    ('{{join .RepoTags ", "}}', "busybox:latest, busybox:1.36"),
    ('{{split "a,b,c" ","}} {{index (split "a:b" ":") 1}}', "[a b c] b"),
    ("{{lower \"ABC\"}} {{upper .State.Status}} {{title \"hello wide-world\"}}", "abc RUNNING Hello Wide-World"),
    ('[{{pad "x" 2 1}}][{{pad "" 2 1}}]', "[  x ][]"),
    ('{{truncate "abcdef" 3}} {{truncate "ab" 3}}', "abc ab"),
    # define / template / block
    ('{{define "ip"}}<{{.IPAddress}}>{{end}}{{template "ip" .NetworkSettings.Networks.app}}', "<10.0.0.2>"),
    ('{{block "b" .Name}}[{{.}}]{{end}}', "[/web]"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_go_semantics(template: str, expected: str) -> None:
    assert run(template) == expected


ERRORS = [
    # parse errors: a line, no column, as Go's parser
    ("{{.Name", "template: :1: unclosed action"),
    ("{{foo}}", 'template: :1: function "foo" not defined'),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{if .Name}}x", "template: :1: unexpected EOF"),
    ("{{range .RepoTags}}x{{else}}y{{else}}z{{end}}", "template: :1: expected end; found {{else}}"),
    ("a\nb{{$x}}", 'template: :2: undefined variable "$x"'),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{/* never closed", "template: :1: unclosed comment"),
    ("{{/* x */ .Name}}", "template: :1: comment ends before closing delimiter"),
    ("{{.Name | 3}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{if}}x{{end}}", "template: :1: missing value for if"),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{1x}}", 'template: :1: bad number syntax: "1x"'),
    ("{{(.Name}}", "template: :1: unclosed left paren"),
    ("{{.Name)}}", "template: :1: unexpected right paren"),
    ("{{3.Name}}", "template: :1: bad number syntax: \"3.N\""),
    ('{{"x".Name}}', 'template: :1: unexpected . after term "\\"x\\""'),
    ("{{range $a, $b, $c := .RepoTags}}{{end}}", "template: :1: too many declarations in range"),
    ("{{.Name !}}", 'template: :1: unexpected "!" in operand'),
    # execution errors: line and byte column of the node, as Go's ErrorContext (a field chain is placed at its
    # second field, as Go's parser places it)
    ("{{len}}", 'template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 0'),
    ("{{index .RepoTags 5}}",
     'template: :1:2: executing "" at <index .RepoTags 5>: error calling index: index out of range: 5'),
    ("{{eq}}", 'template: :1:2: executing "" at <eq>: wrong number of args for eq: want at least 1 got 0'),
    ("{{ne 1}}", 'template: :1:2: executing "" at <ne>: wrong number of args for ne: want 2 got 1'),
    ("{{join .RepoTags}}", 'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1'),
    ("{{lt 1 \"a\"}}", 'template: :1:2: executing "" at <lt 1 "a">: error calling lt: incompatible types for '
                        "comparison"),
    ("{{lt .RepoTags 1}}", 'template: :1:2: executing "" at <lt .RepoTags 1>: error calling lt: invalid type for '
                           "comparison"),
    ("{{.State.Pid.X}}", 'template: :1:8: executing "" at <.State.Pid.X>: can\'t evaluate field X in type int'),
    ("{{.State.Health.Status}}", 'template: :1:8: executing "" at <.State.Health.Status>: nil pointer evaluating '
                                 "interface {}.Status"),
    ("{{range .Name}}{{end}}", 'template: :1:8: executing "" at <.Name>: range can\'t iterate over /web'),
    ("{{lower .State.Pid}}", 'template: :1:14: executing "" at <.State.Pid>: wrong type for value; expected '
                             "string; got int"),
    ('{{truncate "abc" "x"}}', 'template: :1:17: executing "" at <"x">: expected integer; found "x"'),
    ("{{.Name 1}}", 'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'),
    ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
    ('{{index . 1}}', 'template: :1:2: executing "" at <index . 1>: error calling index: value has type int; '
                      "should be string"),
    ('{{template "nope"}}', 'template: :1:11: executing "" at <{{template "nope"}}>: no such template "nope"'),
    ("line one\n  {{.Name.X}}", 'template: :2:9: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_go_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        run(template, missing_key="error")
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)  # what the CLI reports as one "Error: ..." line


def test_missing_keys() -> None:
    """Go's missingkey option: <no value> by default, Go's map error, or a struct's error (Docker's rows)."""
    assert run("{{.Nope}}|{{.Nope.Deeper}}") == "<no value>|<no value>"
    with pytest.raises(TemplateError, match=r'^template: :1:2: executing "" at <\.Nope>: map has no entry for key '
                                            r'"Nope"$'):
        run("{{.Nope}}", missing_key="error")
    with pytest.raises(TemplateError, match=r"^template: :1:9: executing \"\" at <\.Config\.Nope>: can't evaluate "
                                            r"field Nope$"):
        run("{{.Config.Nope}}", missing_key="field")
    # only an executed action fails: the other branch is never looked at, as in Go
    assert run("{{if false}}{{.Nope}}{{end}}ok", missing_key="error") == "ok"


def test_parsed_once_executed_many_times_and_multiline_positions() -> None:
    template = Template("{{range .}}{{.}}\n{{end}}")
    assert [template.execute(v) for v in ([1, 2], [], None)] == ["1\n2\n", "", ""]
    with pytest.raises(TemplateError, match=r"^template: :3: unexpected EOF$"):
        Template("{{if 1}}\n\n")


def test_printing_helpers() -> None:
    assert go_text(None) == "<no value>" and go_text([None, {"a": None}]) == "[<nil> map[a:<nil>]]"
    assert go_text({"b": 1, "a": [True, 1.0]}) == "map[a:[true 1] b:1]"
    assert [go_float(v) for v in (0.1, 1e21, 123456789.0, -2.5, float("inf"))] == [
        "0.1", "1e+21", "1.23456789e+08", "-2.5", "+Inf"]


# ------------------------------------------------------------------------------------------------ tables


def table() -> Table:
    rows = [{"Names": "web", "Status": "Up 2 minutes", "State": "running", "Image": "busybox"},
            {"Names": "db", "Status": "Exited (0) 1 minute ago", "State": "exited", "Image": "postgres:16"}]
    t = Table(["Names", "Status", "Image"], rows, extra_fields=("State", "Ports"))
    t.headers.update({"Names": "NAMES", "Status": "STATUS", "Image": "IMAGE"})
    return t


def test_table_format_runs_templates_per_row() -> None:
    t = table()
    assert t.format("{{.Names}}\\t{{.Status}}") == "web\tUp 2 minutes\ndb\tExited (0) 1 minute ago"
    assert t.format("{{.Names}}: {{if eq .State \"running\"}}up{{else}}down{{end}}") == "web: up\ndb: down"
    assert t.format("{{upper .Names}}{{with .Ports}} {{.}}{{end}}") == "WEB\nDB"  # a known field, empty here
    assert t.format("table {{.Names}}\\t{{.Image}}").splitlines() == [
        "NAMES   IMAGE", "web     busybox", "db      postgres:16"]
    # the header is the template run on the column names, which Docker's functions leave alone
    assert t.format("table {{lower .Names}}\\t{{truncate .Image 3}}").splitlines() == [
        "NAMES   IMAGE", "web     bus", "db      pos"]
    assert t.format("table") == t.plain()
    assert t.format("json").splitlines()[0] == (
        '{"Names":"web","Status":"Up 2 minutes","State":"running","Image":"busybox"}')
    with pytest.raises(TemplateError, match=r"^template: :1:2: executing \"\" at <\.Nope>: can't evaluate field "
                                            r"Nope$"):
        t.format("{{.Nope}}")
    with pytest.raises(TemplateError, match=r'^template: :1: function "foo" not defined$'):
        t.format("{{foo .Names}}")


# ---------------------------------------------------------------------------------------------- the CLI


def test_inspect_format_with_go_actions(cli: Run) -> None:
    assert cli("container", "create", "--name", "web", "--label", "com.example=yes", "busybox", "true")[0] == 0
    fmt = "{{range $name, $net := .NetworkSettings.Networks}}{{$name}}:{{$net.IPAddress}};{{end}}"
    code, out, _ = cli("inspect", "-f", fmt, "web")
    assert code == 0 and out == "none:;\n"  # a created container is on no network yet
    assert cli("inspect", "--format", '{{index .Config.Labels "com.example"}}', "web") == (0, "yes\n", "")
    assert cli("inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}} {{lower .State.Status}} "
                                "{{len .Mounts}} {{.State.Pid}}", "web") == (0, "down created 0 0\n", "")
    assert cli("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "web")[1].startswith("PATH=")
    code, out, err = cli("inspect", "-f", "{{foo .Name}}", "web")
    assert (code, out) == (1, "") and err == 'template parsing error: template: :1: function "foo" not defined\n'
    code, out, err = cli("inspect", "-f", "{{range .Mounts}}", "web")
    assert (code, out) == (1, "") and err.count("\n") == 1 and "unexpected EOF" in err and "{{" not in err
    assert cli("rm", "web")[0] == 0


def test_image_inspect_and_images_format_with_functions(cli: Run) -> None:
    code, out, _ = cli("image", "inspect", "-f", '{{join .RepoTags ", "}}', "busybox")
    assert code == 0 and out == "busybox:1.35.0, busybox:latest\n"
    code, out, _ = cli("images", "--format", "{{lower .Repository}}{{if .Tag}}:{{upper .Tag}}{{end}}")
    assert code == 0 and sorted(out.split()) == ["busybox:1.35.0", "busybox:LATEST"]
    code, out, _ = cli("images", "--format", "table {{.Repository}}\\t{{.Tag}}")
    assert code == 0 and out.splitlines()[0].split() == ["REPOSITORY", "TAG"]


def test_ps_format_with_if(cli: Run) -> None:
    assert cli("container", "create", "--name", "made", "busybox", "true")[0] == 0
    fmt = '{{.Names}} {{if eq .State "running"}}up{{else}}not running ({{.State}}){{end}}'
    assert cli("ps", "-a", "--format", fmt) == (0, "made not running (created)\n", "")
    code, out, _ = cli("ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}")
    assert code == 0 and out.splitlines()[0].split() == ["NAMES", "STATUS"] and out.splitlines()[1].startswith("made")
    assert cli("rm", "made")[0] == 0


def test_ps_format_has_docker_s_label_method_labels_and_networks(cli: Run) -> None:
    """``{{.Label "k"}}`` (a Go method of Docker's row, with an argument), ``{{.Labels}}`` and ``{{.Networks}}``."""
    made = cli("create", "--name", "tiered", "-l", "tier=back", "-l", "a=1", "--network", "none", "busybox", "true")
    assert made[0] == 0
    fmt = '{{.Names}} {{.Label "tier"}} [{{.Label "nope"}}] {{.Networks}}'
    assert cli("ps", "-a", "--format", fmt) == (0, "tiered back [] none\n", "")
    code, out, _ = cli("ps", "-a", "--format", "{{.Labels}}")  # (the image's labels too, as Docker's)
    assert code == 0 and {"a=1", "tier=back"} <= set(out.strip().split(",")) and out.startswith("a=1,")
    code, out, _ = cli("ps", "-a", "--format", 'table {{.Names}}\\t{{.Label "tier"}}')
    assert code == 0 and out.splitlines()[0].split() == ["NAMES", "LABEL"] and out.splitlines()[1].split() == [
        "tiered", "back"]
    code, _, err = cli("ps", "-a", "--format", "{{.Label}}")
    assert code != 0 and "wrong number of args for Label: want 1 got 0" in err and err.count("\n") == 1
    assert cli("rm", "tiered")[0] == 0
