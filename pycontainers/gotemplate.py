"""A faithful subset of Go's ``text/template``, for Docker's ``--format`` and ``inspect -f``.

Students copy Docker idioms from tutorials (``{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}``,
``{{index .Config.Labels "com.example"}}``, ``{{if .State.Running}}up{{else}}down{{end}}``); a course engine that
answers them differently from Docker teaches the wrong thing, so this module follows Go's lexer, parser and
executor closely (same grammar, same truthiness, same printing, same error messages and positions) rather than
guessing with regular expressions.

What is here: text and actions with ``{{-``/``-}}`` trim markers and ``{{/* comments */}}``; fields, ``$``
variables (``:=``, ``=``, ``range $i, $v :=``); ``if``/``else if``/``else``, ``range`` (with ``else``, ``break``,
``continue``), ``with``/``else with``, ``define``/``template``/``block``; pipelines and parenthesised commands;
string, raw string, character, number, bool and ``nil`` literals; Go's builtins (``and or not len index slice
print printf println eq ne lt le gt ge html js urlquery call``) and Docker's (``json split join title lower upper
pad truncate``, see :data:`DOCKER_FUNCS`).

Values are what ``json.loads`` gives (dict, list, str, int, float, bool, None). None stands for JSON's null,
which in Docker's own documents is mostly a typed nil slice or map: so ``len``, ``index`` and ``join`` treat it
as an empty one (Docker prints ``0`` for ``{{len .Mounts}}`` with no mounts, not an error), while printing it
gives Go's ``<no value>``.

Errors are :class:`TemplateError` (a ValueError) with Go's text: ``template: :1: function "foo" not defined``
when parsing (a line only, as Go), ``template: :1:9: executing "" at <.Config.Nope>: ...`` when executing
(line and byte column of the node, as Go's ``ErrorContext``).
"""

from __future__ import annotations

import contextlib
import json
import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

__all__ = ["BUILTINS", "DOCKER_FUNCS", "DOCKER_HEADER_FUNCS", "Func", "Template", "TemplateError", "go_json",
           "go_sprint", "go_text", "render"]


class TemplateError(ValueError):
    """A template that cannot be parsed or executed, worded as Go's text/template words it."""


# ------------------------------------------------------------------------------------------- printing


def go_type(value: Any) -> str:
    """The Go type a JSON-decoded value has (``interface{}`` data), for error messages and ``%T``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits that round-trip *value* (as Go's strconv 'g' with precision -1), and the
    position of the decimal point relative to them."""
    sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    assert isinstance(exponent, int)
    return text, len(text) + exponent


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (strconv's shortest 'g'): the exponent form from 1e+06 up and below
    1e-04 (``fmt.Println(1000000.0)`` is ``1e+06``), and ``+Inf``, ``-Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_sprint(value: Any) -> str:
    """A value as Go's ``fmt`` prints it with ``%v``: ``[a b]``, ``map[k:v]`` (sorted keys), ``<nil>``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_sprint(k)}:{go_sprint(v)}" for k, v in _sorted_items(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def go_text(value: Any) -> str:
    """A value as an action ``{{...}}`` prints it: as ``%v``, except a missing or null value, which Go's
    text/template prints as ``<no value>`` (inside a list or map fmt prints ``<nil>``)."""
    return "<no value>" if value is None else go_sprint(value)


def go_json(value: Any) -> str:
    """Docker's ``json`` template function: compact JSON without Go's HTML escaping of <, > and & (Docker turns
    it off), UTF-8 as is, and U+2028/U+2029 escaped as encoding/json always does."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise _FuncError(f"json: unsupported value: {exc}") from None
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _sorted_items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Go sorts map keys when printing and ranging: numbers numerically, strings by bytes (code points)."""
    try:
        return sorted(mapping.items(), key=lambda kv: kv[0])
    except TypeError:
        return sorted(mapping.items(), key=lambda kv: (go_type(kv[0]), str(kv[0])))


def go_quote(text: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``%q``): backslash escapes, non-printable characters as \\x, \\u or \\U."""
    out = ['"']
    simple = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
              "\\": "\\\\", '"': '\\"'}
    for ch in text:
        code = ord(ch)
        if ch in simple:
            out.append(simple[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif (ascii_only and code >= 0x80) or not (ch.isprintable() or ch == " "):
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ------------------------------------------------------------------------------------------------ lexer

_SPACE = " \t\r\n"
_KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template",
                       "with"})
_SHOWN_AS_KEYWORD = _KEYWORDS | {"dot"}


@dataclass(frozen=True, slots=True)
class _Item:
    """One token; its ``str`` is the one Go's parser puts in ``unexpected ... in ...`` messages."""

    typ: str
    val: str
    pos: int
    line: int

    def __str__(self) -> str:
        if self.typ == "EOF":
            return "EOF"
        if self.typ == "error":
            return self.val
        if self.typ in _SHOWN_AS_KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


class _LexStop(Exception):
    """Lexing stops at its first error, as Go's lexer does (the error becomes the last token)."""


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _describe_rune(ch: str) -> str:
    """Go's ``%#U``: ``U+0021 '!'``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


class _Lexer:
    """Go's text/template lexer, as one pass over the text producing a list of tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[_Item] = []
        self.pos = 0
        self.start = 0
        self.paren = 0

    def line_at(self, pos: int) -> int:
        return 1 + self.text.count("\n", 0, pos)

    def emit(self, typ: str) -> None:
        self.items.append(_Item(typ, self.text[self.start:self.pos], self.start, self.line_at(self.start)))
        self.start = self.pos

    def error(self, message: str) -> NoReturn:
        self.items.append(_Item("error", message, self.start, self.line_at(self.start)))
        raise _LexStop

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def run(self) -> list[_Item]:
        with contextlib.suppress(_LexStop):
            self.lex_text()
        return self.items

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1
        self.start = self.pos

    def lex_text(self) -> None:
        while True:
            i = self.text.find("{{", self.pos)
            if i < 0:
                self.pos = len(self.text)
                if self.pos > self.start:
                    self.emit("text")
                self.emit("EOF")
                return
            trim = self.text[i + 2:i + 3] == "-" and self.text[i + 3:i + 4] in tuple(_SPACE)
            end = i
            if trim:
                end = self.start + len(self.text[self.start:i].rstrip(_SPACE))
            if end > self.start:
                self.pos = end
                self.emit("text")
            self.start = self.pos = i
            after = i + 2 + (2 if trim else 0)
            if self.text.startswith("/*", after):
                self.lex_comment(after)
            else:
                self.pos = i + 2
                self.emit("left_delim")
                if trim:
                    self.pos += 2
                    self.start = self.pos
                self.paren = 0
                self.lex_inside_action()

    def at_right_delim(self) -> tuple[bool, bool]:
        t, p = self.text, self.pos
        if t[p:p + 1] in tuple(_SPACE) and t[p + 1:p + 2] == "-" and t.startswith("}}", p + 2):
            return True, True
        return t.startswith("}}", p), False

    def lex_comment(self, after: int) -> None:
        self.start = self.pos = after
        j = self.text.find("*/", after + 2)
        if j < 0:
            self.error("unclosed comment")
        self.pos = j + 2
        delim, trim = self.at_right_delim()
        if not delim:
            self.error("comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        if trim:
            self.skip_space()
        self.start = self.pos

    def at_terminator(self) -> bool:
        ch = self.peek()
        return ch == "" or ch in _SPACE or ch in ".,|:()" or self.text.startswith("}}", self.pos)

    def lex_inside_action(self) -> None:
        t = self.text
        while True:
            delim, trim = self.at_right_delim()
            if delim:
                if self.paren > 0:
                    self.error("unclosed left paren")
                if trim:
                    self.pos += 2
                    self.start = self.pos
                self.pos += 2
                self.emit("right_delim")
                if trim:
                    self.skip_space()
                return
            if self.pos >= len(t):
                self.error("unclosed action")
            ch = t[self.pos]
            self.pos += 1
            if ch in _SPACE:
                j = self.pos
                while j < len(t) and t[j] in _SPACE:
                    j += 1
                if t.startswith("-}}", j):
                    j -= 1  # the last space belongs to the " -}}" trim marker
                self.pos = j
                if self.pos > self.start:
                    self.emit("space")
            elif ch == "=":
                self.emit("assign")
            elif ch == ":":
                if self.peek() != "=":
                    self.error("expected :=")
                self.pos += 1
                self.emit("declare")
            elif ch == "|":
                self.emit("pipe")
            elif ch == '"':
                self.lex_quote('"', "string", "unterminated quoted string")
            elif ch == "'":
                self.lex_quote("'", "char_constant", "unterminated character constant")
            elif ch == "`":
                j = t.find("`", self.pos)
                if j < 0:
                    self.error("unterminated raw quoted string")
                self.pos = j + 1
                self.emit("raw_string")
            elif ch == "$":
                self.lex_field_or_variable("variable")
            elif ch == "." and self.peek() != "" and not self.peek().isdigit():
                self.lex_field_or_variable("field")
            elif ch in "+-." or ch.isdigit():
                self.pos -= 1
                self.lex_number()
            elif _alnum(ch):
                self.lex_identifier()
            elif ch == "(":
                self.paren += 1
                self.emit("left_paren")
            elif ch == ")":
                self.paren -= 1
                if self.paren < 0:
                    self.error("unexpected right paren")
                self.emit("right_paren")
            elif ch.isascii() and ch.isprintable():
                self.emit("char")
            else:
                self.error(f"unrecognized character in action: {_describe_rune(ch)}")

    def lex_quote(self, quote: str, typ: str, unterminated: str) -> None:
        while True:
            ch = self.peek()
            self.pos += 1
            if ch == "\\":
                nxt = self.peek()
                self.pos += 1
                if nxt not in ("", "\n"):
                    continue
                self.error(unterminated)
            if ch in ("", "\n"):
                self.error(unterminated)
            if ch == quote:
                break
        self.emit(typ)

    def lex_field_or_variable(self, typ: str) -> None:
        if self.at_terminator():
            self.emit("variable" if typ == "variable" else "dot")
            return
        while _alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            self.error(f"bad character {_describe_rune(self.peek())}")
        self.emit(typ)

    def lex_identifier(self) -> None:
        while _alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            self.error(f"bad character {_describe_rune(self.peek())}")
        word = self.text[self.start:self.pos]
        if word in _KEYWORDS:
            self.emit(word)
        elif word in ("true", "false"):
            self.emit("bool")
        else:
            self.emit("identifier")

    def accept(self, chars: str) -> bool:
        if self.peek() != "" and self.peek() in chars:
            self.pos += 1
            return True
        return False

    def accept_run(self, chars: str) -> None:
        while self.accept(chars):
            pass

    def lex_number(self) -> None:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _alnum(self.peek()):
            self.pos += 1
            self.error(f"bad number syntax: {go_quote(self.text[self.start:self.pos])}")
        self.emit("number")


# ------------------------------------------------------------------------------------------------ nodes


class _Node:
    """A parse-tree node; ``pos`` (byte offset) and ``str`` are what execution errors show, as Go's."""

    pos: int

    def __str__(self) -> str:  # pragma: no cover - every node overrides it
        return ""


@dataclass(eq=False)
class _Text(_Node):
    pos: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class _Dot(_Node):
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class _Nil(_Node):
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class _Bool(_Node):
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class _Number(_Node):
    pos: int
    text: str
    value: int | float

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class _String(_Node):
    pos: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class _Field(_Node):
    pos: int
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass(eq=False)
class _Variable(_Node):
    pos: int
    idents: list[str]  # "$x", then fields

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass(eq=False)
class _Identifier(_Node):
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class _Command(_Node):
    pos: int
    args: list[_Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass(eq=False)
class _Pipe(_Node):
    pos: int
    line: int
    decl: list[_Variable] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[_Command] = field(default_factory=list)

    def __str__(self) -> str:
        decl = ", ".join(map(str, self.decl)) + (" = " if self.is_assign else " := ") if self.decl else ""
        return decl + " | ".join(map(str, self.cmds))


@dataclass(eq=False)
class _Chain(_Node):
    pos: int
    node: _Node
    fields: list[str]

    def __str__(self) -> str:
        head = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return head + "".join("." + f for f in self.fields)


@dataclass(eq=False)
class _Action(_Node):
    pos: int
    line: int
    pipe: _Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


def _list_str(nodes: list[_Node]) -> str:
    return "".join(map(str, nodes))


@dataclass(eq=False)
class _Branch(_Node):
    """``if``, ``range`` and ``with``: a pipeline, a list, and perhaps an ``else`` list."""

    keyword: str
    pos: int
    line: int
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + _list_str(self.body)
        if self.else_body is not None:
            text += "{{else}}" + _list_str(self.else_body)
        return text + "{{end}}"


@dataclass(eq=False)
class _Jump(_Node):
    """``{{break}}`` or ``{{continue}}``."""

    pos: int
    keyword: str

    def __str__(self) -> str:
        return "{{" + self.keyword + "}}"


@dataclass(eq=False)
class _TemplateCall(_Node):
    pos: int
    line: int
    name: str
    pipe: _Pipe | None

    def __str__(self) -> str:
        return "{{template " + go_quote(self.name) + (" " + str(self.pipe) if self.pipe else "") + "}}"


@dataclass(eq=False)
class _End(_Node):
    pos: int

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(eq=False)
class _Else(_Node):
    pos: int

    def __str__(self) -> str:
        return "{{else}}"


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(literal: str) -> str:
    """Go's ``strconv.Unquote`` for "interpreted", `raw` and 'c' literals."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")
    quote, body, out, i = literal[0], literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            if ch == quote:
                raise ValueError("invalid syntax")
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1:i + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == quote:
            out.append(quote)
            i += 2
        elif esc and esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise ValueError("invalid syntax")
            out.append(chr(code))
            i += 2 + width
        elif esc and esc in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    text = "".join(out)
    if quote == "'" and len(text) != 1:
        raise ValueError("invalid syntax")
    return text


def _parse_number(text: str, typ: str) -> int | float:
    """A number literal as Go's ``idealConstant`` sees it: an int unless it is written as a float."""
    if typ == "char_constant":
        return ord(_unquote(text))
    clean = text.replace("_", "")
    body = clean.lstrip("+-")
    sign = -1 if clean.startswith("-") else 1
    if body.endswith("i"):
        raise ValueError(f"complex numbers are not supported here: {text}")
    lowered = body.lower()
    try:
        if lowered.startswith("0x"):
            if "." in lowered or "p" in lowered:
                return sign * float.fromhex(body)
            return sign * int(body, 16)
        if lowered.startswith("0o"):
            return sign * int(body[2:], 8)
        if lowered.startswith("0b"):
            return sign * int(body[2:], 2)
        if len(body) > 1 and body.startswith("0") and body.isdigit() and set(body) <= set("01234567"):
            return sign * int(body, 8)  # Go's legacy octal: 017
        value = float(clean)
    except ValueError:
        raise ValueError(f"illegal number syntax: {go_quote(text)}") from None
    if any(c in body for c in ".eEpP") or not value.is_integer():
        return value
    return int(clean)


# ----------------------------------------------------------------------------------------------- parser

_OPERAND_START = frozenset({"bool", "char_constant", "dot", "field", "identifier", "number", "nil", "raw_string",
                            "string", "variable", "left_paren"})


class _Parser:
    """Go's text/template parser (parse.go), over the lexer's token list."""

    def __init__(self, text: str, name: str, funcs: Mapping[str, Any], trees: dict[str, list[_Node]]) -> None:
        self.items = _Lexer(text).run()
        self.i = 0
        self.seen = 0
        self.name = name
        self.funcs = funcs
        self.trees = trees
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.depth = 0

    # tokens
    def next(self) -> _Item:
        item = self.items[min(self.i, len(self.items) - 1)]
        self.i += 1
        self.seen = max(self.seen, self.i - 1)
        return item

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> _Item:
        item = self.next()
        self.backup()
        return item

    def next_non_space(self) -> _Item:
        item = self.next()
        while item.typ == "space":
            item = self.next()
        return item

    def peek_non_space(self) -> _Item:
        item = self.next_non_space()
        self.backup()
        return item

    def errorf(self, message: str) -> NoReturn:
        line = self.items[min(self.seen, len(self.items) - 1)].line
        raise TemplateError(f"template: {self.name}:{line}: {message}")

    def expect(self, typ: str, context: str) -> _Item:
        item = self.next_non_space()
        if item.typ != typ:
            self.unexpected(item, context)
        return item

    def unexpected(self, item: _Item, context: str) -> NoReturn:
        if item.typ == "error":
            extra = ""
            if self.action_line and self.action_line != item.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{item}{extra}")
        self.errorf(f"unexpected {item} in {context}")

    # structure
    def parse(self) -> list[_Node]:
        root: list[_Node] = []
        while self.peek().typ != "EOF":
            if self.peek().typ == "left_delim":
                save = self.i
                self.next()
                if self.next_non_space().typ == "define":
                    self.parse_definition()
                    continue
                self.i = save
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                self.errorf(f"unexpected {node}")
            root.append(node)
        return root

    def add_tree(self, name: str, body: list[_Node]) -> None:
        def empty(nodes: list[_Node]) -> bool:
            return all(isinstance(n, _Text) and not n.text.strip() for n in nodes)

        if name in self.trees and not empty(self.trees[name]) and not empty(body):
            self.errorf(f"template: multiple definition of template {go_quote(name)}")
        if name not in self.trees or empty(self.trees[name]):
            self.trees[name] = body

    def parse_definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in ("string", "raw_string"):
            self.unexpected(item, context)
        name = self.unquote(item.val)
        self.expect("right_delim", context)
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, _End):
            self.errorf(f"unexpected {end} in {context}")
        self.add_tree(name, body)

    def unquote(self, literal: str) -> str:
        try:
            return _unquote(literal)
        except ValueError as exc:
            self.errorf(str(exc))

    def item_list(self) -> tuple[list[_Node], _Node]:
        nodes: list[_Node] = []
        while self.peek_non_space().typ != "EOF":
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return nodes, node
            nodes.append(node)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> _Node:
        item = self.next_non_space()
        if item.typ == "text":
            return _Text(item.pos, item.val)
        if item.typ == "left_delim":
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(item, "input")

    def action(self) -> _Node:
        item = self.next_non_space()
        control = {"block": self.block_control, "else": self.else_control, "end": self.end_control,
                   "if": lambda: self.branch("if"), "range": lambda: self.branch("range"),
                   "template": self.template_control, "with": lambda: self.branch("with")}
        if item.typ in control:
            return control[item.typ]()
        if item.typ in ("break", "continue"):
            end = self.next_non_space()
            if end.typ != "right_delim":
                self.unexpected(end, "{{" + item.typ + "}}")
            if self.range_depth == 0:
                self.errorf("{{" + item.typ + "}} outside {{range}}")
            return _Jump(item.pos, item.typ)
        self.backup()
        item = self.peek()
        return _Action(item.pos, item.line, self.pipeline("command", "right_delim"))

    def branch(self, keyword: str) -> _Branch:
        pipe, body, else_body = self.parse_control(keyword)
        return _Branch(keyword, pipe.pos, pipe.line, pipe, body, else_body)

    def parse_control(self, context: str) -> tuple[_Pipe, list[_Node], list[_Node] | None]:
        depth = len(self.vars)
        try:
            pipe = self.pipeline(context, "right_delim")
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_body: list[_Node] | None = None
            if isinstance(nxt, _Else):
                if context in ("if", "with") and self.peek().typ == context:
                    # {{else if x}} is {{else}}{{if x}}...{{end}}{{end}}: parse the inner one, whose {{end}}
                    # closes both
                    self.next()
                    else_body = [self.branch(context)]
                else:
                    else_body, nxt = self.item_list()
                    if not isinstance(nxt, _End):
                        self.errorf(f"expected end; found {nxt}")
            return pipe, body, else_body
        finally:
            del self.vars[depth:]

    def else_control(self) -> _Node:
        peek = self.peek_non_space()
        if peek.typ in ("if", "with"):
            return _Else(peek.pos)
        return _Else(self.expect("right_delim", "else").pos)

    def end_control(self) -> _Node:
        return _End(self.expect("right_delim", "end").pos)

    def template_name(self, item: _Item, context: str) -> str:
        if item.typ not in ("string", "raw_string"):
            self.unexpected(item, context)
        return self.unquote(item.val)

    def template_control(self) -> _Node:
        context = "template clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = None
        if self.next_non_space().typ != "right_delim":
            self.backup()
            pipe = self.pipeline(context, "right_delim")
        return _TemplateCall(item.pos, item.line, name, pipe)

    def block_control(self) -> _Node:
        context = "block clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = self.pipeline(context, "right_delim")
        saved = (self.vars, self.range_depth)
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved
        if not isinstance(end, _End):
            self.errorf(f"unexpected {end} in {context}")
        self.add_tree(name, body)
        return _TemplateCall(item.pos, item.line, name, pipe)

    def pipeline(self, context: str, end: str) -> _Pipe:
        first = self.peek_non_space()
        pipe = _Pipe(first.pos, first.line)
        while True:  # declarations: $x := ..., $x = ..., range $i, $v := ...
            save = self.i
            var = self.next_non_space()
            if var.typ != "variable":
                self.i = save
                break
            nxt = self.peek_non_space()
            if nxt.typ in ("assign", "declare"):
                pipe.is_assign = nxt.typ == "assign"
                self.next_non_space()
                pipe.decl.append(_Variable(var.pos, [var.val]))
                self.vars.append(var.val)
                break
            if nxt.typ == "char" and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in ("variable", "right_delim", "right_paren"):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(item, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for n, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], _Bool | _Dot | _Nil | _Number | _String):
                self.errorf(f"non executable command in pipeline stage {n}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == "space":
                continue
            if item.typ in ("right_delim", "right_paren"):
                self.backup()
            elif item.typ != "pipe":
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == "field":
            pos = self.peek().pos
            fields = []
            while self.peek().typ == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(pos, node.idents + fields)
            if isinstance(node, _Variable):
                return _Variable(pos, node.idents + fields)
            if isinstance(node, _Bool | _String | _Number | _Nil | _Dot):
                self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return _Chain(pos, node, fields)
        return node

    def term(self) -> _Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == "identifier":
            if item.val not in self.funcs:
                self.errorf(f"function {go_quote(item.val)} not defined")
            return _Identifier(item.pos, item.val)
        if typ == "dot":
            return _Dot(item.pos)
        if typ == "nil":
            return _Nil(item.pos)
        if typ == "variable":
            if item.val not in self.vars:
                self.errorf(f"undefined variable {go_quote(item.val)}")
            return _Variable(item.pos, [item.val])
        if typ == "field":
            return _Field(item.pos, [item.val[1:]])
        if typ == "bool":
            return _Bool(item.pos, item.val == "true")
        if typ in ("number", "char_constant"):
            try:
                return _Number(item.pos, item.val, _parse_number(item.val, typ))
            except ValueError as exc:
                self.errorf(str(exc))
        if typ == "left_paren":
            self.depth += 1
            if self.depth > 1000:
                self.errorf("max expression depth exceeded")
            pipe = self.pipeline("parenthesized pipeline", "right_paren")
            self.depth -= 1
            return pipe
        if typ in ("string", "raw_string"):
            return _String(item.pos, item.val, self.unquote(item.val))
        self.backup()
        return None


# --------------------------------------------------------------------------------------------- functions


class _FuncError(Exception):
    """What a template function returns as Go's ``error``: shown as ``error calling NAME: ...``."""


@dataclass(frozen=True)
class Func:
    """A template function with Go's signature: parameter kinds (``any``, ``value``, ``string``, ``int``,
    ``strings``), a variadic kind or None, so arguments are counted and typed as Go's executor does.

    ``value`` is Go's ``reflect.Value`` parameter of builtins such as ``eq`` and ``index``: ``nil`` cannot be
    passed to it (``cannot assign nil to reflect.Value``), as in Go."""

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None


_MISSING: Any = object()  # no final value from a previous pipeline stage


def _truth(value: Any) -> bool:
    """Go's ``truth``: false, 0, nil and empty strings, lists and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(arg1: Any, *others: Any) -> bool:
    k1 = _kind(arg1)
    for arg in others:
        k2 = _kind(arg)
        if k1 != k2:
            if k1 != "nil" and k2 != "nil":
                raise _FuncError("incompatible types for comparison")
            continue
        if k1 == "other":
            raise _FuncError(f"non-comparable type {go_sprint(arg1)}: {go_type(arg1)}")
        if arg1 == arg:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _lt(arg1: Any, arg2: Any) -> bool:
    k1, k2 = _kind(arg1), _kind(arg2)
    if k1 not in ("int", "float", "string") or k2 not in ("int", "float", "string"):
        raise _FuncError("invalid type for comparison")
    if k1 != k2:
        raise _FuncError("incompatible types for comparison")
    return bool(arg1 < arg2)


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


def _not(arg: Any) -> bool:
    return not _truth(arg)


def _len(item: Any) -> int:
    if item is None:
        return 0  # a typed nil slice or map in Docker's documents
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    raise _FuncError(f"len of type {go_type(item)}")


def _zero_of(mapping: Mapping[str, Any]) -> Any:
    """A missing key's value from ``index``: Go gives the map's zero value. Docker's label and option maps are
    map[string]string, so with string values (or none) that is "", otherwise nil."""
    return "" if all(isinstance(v, str) for v in mapping.values()) else None


def _index_int(index: Any, what: str) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        if index is None:
            raise _FuncError(f"cannot index {what} with nil")
        raise _FuncError(f"cannot index {what} with type {go_type(index)}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    for index in indexes:
        if item is None:
            if isinstance(index, str):
                item = ""
                continue
            raise _FuncError(f"index out of range: {index}") if isinstance(index, int) else _FuncError(
                "index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(index, str):
                raise _FuncError(f"value has type {go_type(index)}; should be string")
            item = item[index] if index in item else _zero_of(item)
        elif isinstance(item, list | tuple | str):
            i = _index_int(index, "slice/array")
            seq: Sequence[Any] = item.encode() if isinstance(item, str) else item
            if i < 0 or i >= len(seq):
                raise _FuncError(f"index out of range: {i}")
            item = seq[i]
        else:
            raise _FuncError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq: Any = item.encode()
    elif isinstance(item, list | tuple):
        seq = list(item)
    else:
        raise _FuncError(f"can't slice item of type {go_type(item)}")
    bounds = [0, len(seq)]
    for n, index in enumerate(indexes):
        i = _index_int(index, "slice/array")
        if i < 0 or i > len(seq):
            raise _FuncError(f"index out of range: {i}")
        if n < 2:
            bounds[n] = i
        elif i < bounds[1]:
            raise _FuncError(f"invalid slice index: {bounds[1]} > {i}")
    if bounds[0] > bounds[1]:
        raise _FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    part = seq[bounds[0]:bounds[1]]
    return part.decode(errors="replace") if isinstance(part, bytes) else part


def _sprint(*args: Any) -> str:
    """``fmt.Sprint``: spaces between operands when neither side is a string."""
    out = []
    for n, arg in enumerate(args):
        if n and not isinstance(arg, str) and not isinstance(args[n - 1], str):
            out.append(" ")
        out.append(go_sprint(arg))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(go_sprint(a) for a in args) + "\n"


def _bad_verb(verb: str, arg: Any) -> str:
    return f"%!{verb}(<nil>)" if arg is None else f"%!{verb}({go_type(arg)}={go_sprint(arg)})"


def _pad(text: str, width: int | None, minus: bool, zero: bool = False) -> str:
    if width is None or len(text) >= width:
        return text
    if minus:
        return text.ljust(width)
    if zero:
        sign = text[0] if text[:1] in "+-" else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)


def _format_one(verb: str, arg: Any, flags: str, width: int | None, prec: int | None) -> str:
    """One ``%verb`` of Go's fmt for JSON-like values (lists and maps apply the verb to their elements)."""
    minus, plus, zero, sharp, space = ("-" in flags, "+" in flags, "0" in flags, "#" in flags, " " in flags)
    if verb == "T":
        return _pad(go_type(arg), width, minus)
    if isinstance(arg, list | tuple) and verb not in "vT":
        return "[" + " ".join(_format_one(verb, v, flags, width, prec) for v in arg) + "]"
    if isinstance(arg, Mapping) and verb != "v":
        def one(v: Any) -> str:
            return _format_one(verb, v, flags, width, prec)

        return "map[" + " ".join(f"{one(k)}:{one(v)}" for k, v in _sorted_items(arg)) + "]"
    if verb == "v":
        if isinstance(arg, str) and sharp:
            return _pad(go_quote(arg), width, minus)
        if isinstance(arg, int | float) and not isinstance(arg, bool):
            verb = "d" if isinstance(arg, int) else "g"
        else:
            text = go_sprint(arg)
            if prec is not None and isinstance(arg, str):
                text = text[:prec]
            return _pad(text, width, minus)
    kind = _kind(arg)
    if verb in "sq" and kind == "string":
        text = arg if prec is None else arg[:prec]
        return _pad(go_quote(text, ascii_only=plus) if verb == "q" else text, width, minus)
    if verb == "t" and kind == "bool":
        return _pad(go_sprint(arg), width, minus)
    if verb in "xX" and kind == "string":
        text = arg.encode().hex()
        return _pad(text.upper() if verb == "X" else text, width, minus)
    if kind == "int":
        if verb == "c":
            return _pad(chr(arg), width, minus)
        if verb == "q":
            return _pad("'" + go_quote(chr(arg))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", width, minus)
        if verb == "U":
            return _pad(f"U+{arg:04X}", width, minus)
        bases = {"d": ("d", ""), "b": ("b", "0b"), "o": ("o", "0"), "O": ("o", "0o"), "x": ("x", "0x"),
                 "X": ("X", "0X")}
        if verb in bases:
            spec, prefix = bases[verb]
            digits = format(abs(arg), spec)
            if prec is not None:
                digits = digits.rjust(prec, "0")
            if verb == "O" or (sharp and verb != "d"):
                digits = prefix + digits
            sign = "-" if arg < 0 else "+" if plus else " " if space else ""
            return _pad(sign + digits, width, minus, zero and prec is None)
    if kind == "float" and verb in "eEfFgG":
        if verb in "gG" and prec is None:
            text = go_float(arg)
            text = text.upper() if verb == "G" else text
        else:
            text = format(arg, f".{6 if prec is None else prec}{verb}")
            if not math.isfinite(arg):
                text = go_float(arg)
        if plus and not text.startswith("-"):
            text = "+" + text
        elif space and not text.startswith("-"):
            text = " " + text
        return _pad(text, width, minus, zero)
    return _bad_verb(verb, arg)


def _sprintf(fmt: str, *args: Any) -> str:
    """``fmt.Sprintf`` for the verbs templates use: %v %s %q %d %x %X %o %b %c %U %e %f %g %t %T %%, with
    flags, width and precision (``*`` too), and Go's ``%!d(string=x)``, ``%!v(MISSING)``, ``%!(EXTRA ...)``."""
    out: list[str] = []
    n, i = 0, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        i += 1
        flags = ""
        while i < len(fmt) and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width: int | None = None
        prec: int | None = None
        if fmt[i:i + 1] == "*":
            i += 1
            width = args[n] if n < len(args) and isinstance(args[n], int) else None
            n += 1
        else:
            start = i
            while i < len(fmt) and fmt[i].isdigit():
                i += 1
            width = int(fmt[start:i]) if i > start else None
        if fmt[i:i + 1] == ".":
            i += 1
            if fmt[i:i + 1] == "*":
                i += 1
                prec = args[n] if n < len(args) and isinstance(args[n], int) else 0
                n += 1
            else:
                start = i
                while i < len(fmt) and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[start:i]) if i > start else 0
        if i >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(verb, args[n], flags, width, prec))
        n += 1
    if n < len(args):
        extra = ", ".join("<nil>" if a is None else f"{go_type(a)}={go_sprint(a)}" for a in args[n:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _eval_args(args: tuple[Any, ...]) -> str:
    """What ``html``, ``js`` and ``urlquery`` escape: one string as is, else ``fmt.Sprint`` of them all."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*("<no value>" if a is None else a for a in args))


def _html(*args: Any) -> str:
    text = _eval_args(args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in text)


def _js(*args: Any) -> str:
    out = []
    for c in _eval_args(args):
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=" or ord(c) < 0x20 or (not c.isascii() and not c.isprintable()):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_eval_args(args), safe="-_.~")


def _call(fn: Any, *args: Any) -> Any:
    if fn is None:
        raise _FuncError("call of nil")
    if not callable(fn):
        raise _FuncError(f"non-function of type {go_type(fn)}")
    return fn(*args)


def _title(text: str) -> str:
    """Go's deprecated ``strings.Title`` (Docker's ``title``): upper-case the first letter of each word."""
    out, prev = [], " "
    for c in text:
        separator = not (prev.isalnum() or prev == "_") and (prev.isascii() or prev.isspace()
                                                             or unicodedata.category(prev)[0] not in "LN")
        out.append(c.upper() if separator else c)
        prev = c
    return "".join(out)


def _split(text: str, sep: str) -> list[str]:
    return list(text) if sep == "" else text.split(sep)


def _repeat(count: int) -> str:
    if count < 0:
        raise _FuncError("strings: negative Repeat count")
    return " " * count


def _docker_pad(source: str, prefix: int, suffix: int) -> str:
    """Docker's ``pad``: spaces around a non-empty string (an empty one stays empty, so columns collapse)."""
    return source if source == "" else _repeat(prefix) + source + _repeat(suffix)


def _truncate(source: str, length: int) -> str:
    """Docker's ``truncate``: the first *length* bytes."""
    data = source.encode()
    if len(data) < length:
        return source
    if length < 0:
        raise _FuncError(f"slice bounds out of range [:{length}]")
    return data[:length].decode(errors="replace")


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: a, ("value",), "value"),  # short-circuit: handled by the executor
    "or": Func(lambda *a: a, ("value",), "value"),
    "not": Func(_not, ("value",)),
    "len": Func(_len, ("value",)),
    "index": Func(_index, ("value",), "value"),
    "slice": Func(_slice, ("value",), "value"),
    "print": Func(_sprint, (), "any"),
    "printf": Func(_sprintf, ("string",), "any"),
    "println": Func(_sprintln, (), "any"),
    "eq": Func(_eq, ("value",), "value"),
    "ne": Func(_ne, ("value", "value")),
    "lt": Func(_lt, ("value", "value")),
    "le": Func(_le, ("value", "value")),
    "gt": Func(_gt, ("value", "value")),
    "ge": Func(_ge, ("value", "value")),
    "html": Func(_html, (), "any"),
    "js": Func(_js, (), "any"),
    "urlquery": Func(_urlquery, (), "any"),
    "call": Func(_call, ("value",), "value"),
}

# Docker's template functions (cli/templates): json without HTML escaping, and string helpers
DOCKER_FUNCS: dict[str, Func] = {
    "json": Func(go_json, ("any",)),
    "split": Func(_split, ("string", "string")),
    "join": Func(lambda elems, sep: sep.join(elems), ("strings", "string")),
    "title": Func(_title, ("string",)),
    "lower": Func(lambda s: s.lower(), ("string",)),
    "upper": Func(lambda s: s.upper(), ("string",)),
    "pad": Func(_docker_pad, ("string", "int", "int")),
    "truncate": Func(_truncate, ("string", "int")),
}

# What Docker executes a ``table`` format's header with: these return the column name unchanged, so
# ``table {{lower .Names}}`` still has NAMES above its column (``pad`` is kept, for the alignment)
DOCKER_HEADER_FUNCS: dict[str, Func] = {
    "json": Func(lambda v: v, ("string",)),
    "split": Func(lambda v, _: v, ("string", "string")),
    "join": Func(lambda v, _: v, ("string", "string")),
    "title": Func(lambda v: v, ("string",)),
    "lower": Func(lambda v: v, ("string",)),
    "upper": Func(lambda v: v, ("string",)),
    "truncate": Func(lambda v, _: v, ("string", "int")),
}


# --------------------------------------------------------------------------------------------- executor


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MAX_DEPTH = 100  # nested {{template}} calls (Go allows 100000; Python's stack does not)


class _State:
    """One execution: the variable stack, the node being evaluated (for error positions), the output."""

    def __init__(self, template: Template, funcs: Mapping[str, Func], missing_key: str, name: str) -> None:
        self.template = template
        self.funcs = funcs
        self.missing_key = missing_key
        self.name = name
        self.vars: list[list[Any]] = []
        self.node: _Node | None = None
        self.out: list[str] = []
        self.depth = 0

    # errors
    def at(self, node: _Node) -> None:
        self.node = node

    def errorf(self, message: str) -> NoReturn:
        if self.node is None:
            raise TemplateError(f"template: {self.name}: {message}")
        text = self.template.text
        pos = self.node.pos
        newline = text.rfind("\n", 0, pos)
        column = pos if newline < 0 else pos - newline - 1
        line = 1 + text.count("\n", 0, pos)
        raise TemplateError(f"template: {self.template.name}:{line}:{column}: executing {go_quote(self.name)} "
                            f"at <{self.node}>: {message}")

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        self.errorf(f"undefined variable: {name}")

    # statements
    def walk(self, dot: Any, node: _Node) -> None:
        self.at(node)
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                self.out.append(go_text(value))
        elif isinstance(node, _Branch):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, _Jump):
            raise _Break if node.keyword == "break" else _Continue
        elif isinstance(node, _TemplateCall):
            self.walk_template(dot, node)
        else:  # pragma: no cover
            self.errorf(f"unknown node: {node}")

    def walk_list(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk_if_or_with(self, dot: Any, node: _Branch) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if _truth(value):
                self.walk_list(value if node.keyword == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: _Branch) -> None:
        self.at(node)
        outer = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            mark = self.mark()
            pairs: list[tuple[Any, Any]]
            if value is None:
                pairs = []
            elif isinstance(value, list | tuple):
                pairs = list(enumerate(value))
            elif isinstance(value, Mapping):
                pairs = _sorted_items(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                if len(node.pipe.decl) > 1:
                    self.errorf(f"can't use {value} to iterate over more than one variable")
                pairs = [(i, i) for i in range(value)]
            else:
                self.errorf(f"range can't iterate over {go_sprint(value)}")
            decl = node.pipe.decl
            try:
                for index, elem in pairs:
                    if decl:
                        if node.pipe.is_assign:
                            self.set_var(decl[0].idents[0], index if len(decl) > 1 else elem)
                            if len(decl) > 1:
                                self.set_var(decl[1].idents[0], elem)
                        else:
                            self.vars[mark - 1][1] = elem
                            if len(decl) > 1:
                                self.vars[mark - 2][1] = index
                    try:
                        self.walk_list(elem, node.body)
                    except _Continue:
                        pass
                    finally:
                        self.pop(mark)
            except _Break:
                return
            if not pairs and node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, node: _TemplateCall) -> None:
        self.at(node)
        body = self.template.trees.get(node.name)
        if body is None:
            self.errorf(f"no such template {go_quote(node.name)}")
        if self.depth >= _MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_DEPTH})")
        value = self.eval_pipeline(dot, node.pipe) if node.pipe else None
        saved = (self.vars, self.name)
        self.vars, self.name = [["$", value]], node.name
        self.depth += 1
        try:
            self.walk_list(value, body)
        finally:
            self.vars, self.name = saved
            self.depth -= 1

    # expressions
    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        self.at(pipe)
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.idents[0], value)
            else:
                self.push(var.idents[0], value)
        return value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, _Variable):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Bool):
            return first.value
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Number):
            return first.value
        if isinstance(first, _String):
            return first.text
        if isinstance(first, _Nil):
            self.errorf("nil is not a command")
        self.errorf(f"can't evaluate command {first}")  # pragma: no cover

    def eval_chain(self, dot: Any, chain: _Chain, args: list[_Node] | None, final: Any) -> Any:
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, chain.node, "any")
        return self.eval_field_chain(dot, receiver, chain, chain.fields, args, final)

    def eval_variable(self, dot: Any, var: _Variable, args: list[_Node] | None, final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: _Node, idents: list[str], args: list[_Node] | None,
                         final: Any) -> Any:
        for name in idents[:-1]:
            receiver = self.eval_field(dot, name, None, _MISSING, receiver)
        return self.eval_field(dot, idents[-1], args, final, receiver)

    def eval_field(self, dot: Any, name: str, args: list[_Node] | None, final: Any, receiver: Any) -> Any:
        method = (getattr(receiver, "go_methods", None) or {}).get(name)
        if method is not None:  # a Go method of the value (Docker's ``{{.Label "key"}}``): before its fields, as Go
            values = [self.eval_arg(dot, arg, "any") for arg in (args or [])[1:]]
            if final is not _MISSING:
                values.append(final)
            import inspect

            try:
                inspect.signature(method).bind(*values)
            except TypeError:
                wanted = sum(p.default is p.empty for p in inspect.signature(method).parameters.values())
                self.errorf(f"wrong number of args for {name}: want {wanted} got {len(values)}")
            return method(*values)
        if receiver is None:
            if self.missing_key == "default":
                return None
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, Mapping):
            if (args is not None and len(args) > 1) or final is not _MISSING:
                self.errorf(f"{name} is not a method but has arguments")
            try:
                return receiver[name]
            except KeyError:
                pass
            if self.missing_key == "error":
                self.errorf(f"map has no entry for key {go_quote(name)}")
            if self.missing_key == "field":
                self.errorf(f"can't evaluate field {name}")
            return None
        self.errorf(f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(self, dot: Any, node: _Identifier, cmd: _Node, args: list[_Node] | None, final: Any) -> Any:
        self.at(node)
        func = self.funcs.get(node.name)
        if func is None:
            self.errorf(f"{go_quote(node.name)} is not a defined function")
        arg_nodes = (args or [])[1:]
        count = len(arg_nodes) + (0 if final is _MISSING else 1)
        if func.variadic is not None:
            if count < len(func.params):
                self.errorf(f"wrong number of args for {node.name}: want at least {len(func.params)} "
                            f"got {len(arg_nodes)}")
        elif count != len(func.params):
            self.errorf(f"wrong number of args for {node.name}: want {len(func.params)} got {count}")

        def kind(n: int) -> str:
            return func.params[n] if n < len(func.params) else func.variadic or "any"

        if node.name in ("and", "or") and func is BUILTINS.get(node.name):
            value = None
            for n, arg in enumerate(arg_nodes):
                value = self.eval_arg(dot, arg, kind(n))
                if _truth(value) == (node.name == "or"):
                    return value
            return final if final is not _MISSING else value
        values = [self.eval_arg(dot, arg, kind(n)) for n, arg in enumerate(arg_nodes)]
        if final is not _MISSING:
            values.append(self.check_value(final, kind(len(arg_nodes))))
        try:
            return func.fn(*values)
        except _FuncError as exc:
            self.at(cmd)
            self.errorf(f"error calling {node.name}: {exc}")
        except (ArithmeticError, LookupError, TypeError, ValueError, OverflowError) as exc:
            self.at(cmd)
            self.errorf(f"error calling {node.name}: {exc}")

    def check_value(self, value: Any, kind: str) -> Any:
        """Go's ``validateType``: a value passed to a typed parameter."""
        if kind in ("any", "value"):
            return value
        if kind == "strings":
            if value is None:
                return []
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return list(value)
            self.errorf(f"wrong type for value; expected []string; got {go_type(value)}")
        expected = {"string": str, "int": int}[kind]
        if value is None:
            self.errorf(f"invalid value; expected {kind}")
        if not isinstance(value, expected) or isinstance(value, bool):
            self.errorf(f"wrong type for value; expected {kind}; got {go_type(value)}")
        return value

    def eval_arg(self, dot: Any, node: _Node, kind: str) -> Any:
        self.at(node)
        if isinstance(node, _Nil):
            if kind == "any":
                return None
            self.errorf(f"cannot assign nil to {'reflect.Value' if kind == 'value' else kind}")
        if kind in ("string", "int") and isinstance(node, _Number | _String | _Bool):
            literal = node.value if isinstance(node, _Number | _Bool) else node.text
            if kind == "int" and not (isinstance(literal, int) and not isinstance(literal, bool)):
                self.errorf(f"expected integer; found {node}")
            if kind == "string" and not isinstance(literal, str):
                self.errorf(f"expected string; found {node}")
            return literal
        if isinstance(node, _Dot):
            value = dot
        elif isinstance(node, _Field):
            value = self.eval_field_chain(dot, dot, node, node.idents, None, _MISSING)
        elif isinstance(node, _Variable):
            value = self.eval_variable(dot, node, None, _MISSING)
        elif isinstance(node, _Pipe):
            value = self.eval_pipeline(dot, node)
        elif isinstance(node, _Identifier):
            value = self.eval_function(dot, node, node, None, _MISSING)
        elif isinstance(node, _Chain):
            value = self.eval_chain(dot, node, None, _MISSING)
        elif isinstance(node, _Bool | _Number):
            value = node.value
        elif isinstance(node, _String):
            value = node.text
        else:  # pragma: no cover
            self.errorf(f"can't handle {node} for arg of type {kind}")
        self.at(node)
        return self.check_value(value, kind)


# ---------------------------------------------------------------------------------------------- template


class Template:
    """A parsed template: parse once (errors are found here, as Go's ``Parse``), execute on each value.

    *funcs* are the functions besides Go's builtins (e.g. :data:`DOCKER_FUNCS`); names are checked when
    parsing, so ``{{foo}}`` fails with ``function "foo" not defined`` before anything is printed."""

    def __init__(self, text: str, *, name: str = "", funcs: Mapping[str, Func] | None = None) -> None:
        self.text = text
        self.name = name
        self.funcs: dict[str, Func] = {**BUILTINS, **(funcs or {})}
        self.trees: dict[str, list[_Node]] = {}
        parser = _Parser(text, name, self.funcs, self.trees)
        try:
            root = parser.parse()
        except RecursionError:
            raise TemplateError(f"template: {name}: template nested too deeply") from None
        if name not in self.trees or root:
            self.trees[name] = root
        self.root = self.trees[name]

    def execute(self, data: Any, *, funcs: Mapping[str, Func] | None = None, missing_key: str = "default") -> str:
        """The text for *data*. *funcs* replace functions by name for this execution (as Docker's table
        headers do); *missing_key* is Go's option: ``default`` prints ``<no value>``, ``error`` fails with
        ``map has no entry for key``, and ``field`` fails as a Go struct would (``can't evaluate field X``)."""
        if missing_key not in ("default", "error", "field"):
            raise ValueError(f"missing_key must be default, error or field, not {missing_key!r}")
        state = _State(self, {**self.funcs, **(funcs or {})}, missing_key, self.name)
        state.push("$", data)
        try:
            state.walk_list(data, self.root)
        except RecursionError:
            state.errorf("template nested too deeply")
        return "".join(state.out)


def render(text: str, data: Any, *, funcs: Mapping[str, Func] | None = None, missing_key: str = "default") -> str:
    """Parse *text* and execute it on *data* (``Template(text, funcs=funcs).execute(data)``)."""
    return Template(text, funcs=funcs).execute(data, missing_key=missing_key)
