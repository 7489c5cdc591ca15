"""Dockerfiles read the way Docker reads them: Docker's own parser, then typed instructions, checks and ``$VAR``.

Splitting a Dockerfile into instructions (continuation lines, comments inside them, the ``# escape=`` and
``# syntax=`` directives, JSON versus shell form, heredocs) is done by Docker's own Go parser
(moby/buildkit ``frontend/dockerfile/parser``) through the PyPI package ``dockerfile``, so a file that Docker
splits one way is never split another way here. On top of it this module adds what the classic builder does
next: typed instructions with their line numbers and flags, one-line errors that name ``Dockerfile:LINE``,
stages, variable substitution (a port of buildkit ``shell.Lex``) and the ARG/ENV scoping rules.

Which words the *builder* substitutes ``$VAR`` in (Docker's ``replaceEnvAllowed``)::

    instruction                 substituted   how
    --------------------------  ------------  -------------------------------------------------------------
    FROM                        yes           image and --platform, with the ARGs declared before the first
                                              FROM (and --build-arg) only: ``BuildArgs.global_env()``
    ARG                         yes           name and default, with the env from before the line (as ENV)
    ENV, LABEL                  yes           every key and value; all pairs of one line see the env from
                                              before that line (``ENV a=1 b=$a`` gives b the OLD a)
    ADD, COPY                   yes           each source, the destination, --chown and --chmod
    EXPOSE                      yes           and split into words afterwards (``expand_words``)
    STOPSIGNAL USER VOLUME      yes           one word each (``expand``)
    WORKDIR
    heredoc body of ADD/COPY    yes           unless the delimiter is quoted (``<<"EOF"``); quotes in the
                                              body are kept: ``expand(body, env, shell_form=True)``
    RUN CMD ENTRYPOINT (shell)  no            the shell in the container expands them when it runs
    RUN CMD ENTRYPOINT (JSON)   no            no shell at all: ``["echo", "$HOME"]`` prints ``$HOME``
    heredoc body of RUN         no            the shell reads it
    SHELL HEALTHCHECK           no            stored as written
    MAINTAINER
    ONBUILD                     no            the trigger is stored as text and expanded in the child build

Every instruction here keeps its arguments *unexpanded and with their quotes* (``ENV a="b c"`` keeps the
value ``"b c"``): ``expand`` removes the quotes, exactly as Docker's lexer does, once the builder knows the
environment at that point of the build. ``BuildArgs`` and ``StageScope`` do that bookkeeping.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dockerfile as _goparser

from pycontainers.errors import PyContainersError

__all__ = [
    "BUILTIN_BUILD_ARGS",
    "EXPANDED_KEYWORDS",
    "INSTRUCTIONS",
    "AddInstruction",
    "ArgInstruction",
    "BuildArgs",
    "CmdInstruction",
    "CommandInstruction",
    "CopyInstruction",
    "Dockerfile",
    "DockerfileError",
    "EntrypointInstruction",
    "EnvInstruction",
    "ExpansionError",
    "ExposeInstruction",
    "FromInstruction",
    "HealthcheckInstruction",
    "Heredoc",
    "Instruction",
    "LabelInstruction",
    "Lexer",
    "MaintainerInstruction",
    "OnbuildInstruction",
    "RunInstruction",
    "ShellInstruction",
    "Stage",
    "StageScope",
    "StopsignalInstruction",
    "UserInstruction",
    "VolumeInstruction",
    "WorkdirInstruction",
    "expand",
    "expand_words",
    "parse",
    "parse_file",
    "parse_triggers",
]

#: Every instruction keyword Docker knows, upper case.
INSTRUCTIONS: tuple[str, ...] = tuple(sorted(name.upper() for name in _goparser.all_cmds()))

#: The instructions whose arguments the builder substitutes variables in (see the table above).
EXPANDED_KEYWORDS = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)

#: Build args Docker accepts without an ARG line and never warns about (``builtinAllowedBuildArgs``).
BUILTIN_BUILD_ARGS = frozenset(
    {
        "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
    }
)  # fmt: skip


class DockerfileError(PyContainersError):
    """A Dockerfile Docker would refuse; the message is one line starting with ``Dockerfile:LINE:``."""


class ExpansionError(DockerfileError):
    """A ``$VAR`` expression the lexer cannot process (``${X``, ``${X:?must be set}`` with X unset, ...)."""


def _one_line(text: str) -> str:
    # Errors must stay on one line even when they quote a multi-line heredoc instruction.
    return " ".join(text.split("\n")) if "\n" in text else text


def _error_at(filename: str, line: int, message: str) -> DockerfileError:
    return DockerfileError(f"{filename}:{line}: {_one_line(message)}")


# --------------------------------------------------------------------------------------------------------
# Variable substitution: a port of buildkit frontend/dockerfile/shell/lex.go
# --------------------------------------------------------------------------------------------------------

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_REGEX_SPECIALS = frozenset("[]{}.+()|^$")


class _LexError(Exception):
    """Internal: a lexing failure, turned into ExpansionError with the whole word by ``Lexer``."""


@dataclass(frozen=True)
class Lexer:
    """Docker's word lexer with buildkit's switches; ``expand``/``expand_words`` cover the usual cases.

    ``raw_quotes`` keeps quote characters in the result, ``raw_escapes`` keeps escape characters,
    ``skip_process_quotes`` makes quotes ordinary characters, ``skip_unset_env`` leaves ``$X`` as written
    when X is unset. Docker turns these on for heredoc delimiters and heredoc bodies; instruction arguments
    use none of them.
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Substitute and unquote ``word`` into one string, keeping its inner spaces (``ProcessWord``)."""
        return self._run(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Substitute, unquote and split on unquoted whitespace, after substitution (``ProcessWords``)."""
        return self._run(word, env)[1]

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        try:
            return _WordProcessor(self, word, env).process()
        except _LexError as exc:
            raise ExpansionError(f'failed to process "{_one_line(word)}": {exc}') from None


class _Scanner:
    """Go's text/scanner as the lexer uses it: one character of look-ahead, "" at the end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class _Words:
    """The word splitter of ``ProcessWords``: unquoted whitespace ends a word, quoted text never does."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class _WordProcessor:
    """One run of the lexer over one word; method names follow lex.go so the two can be read side by side."""

    def __init__(self, lexer: Lexer, word: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.sc = _Scanner(word)
        self.env = env
        self.raw_escapes = lexer.raw_escapes

    def process(self) -> tuple[str, list[str]]:
        return self.stop_on(_EOF, self.raw_escapes)

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end; raw_escapes applies to this stretch only."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while (ch := self.sc.peek()) != _EOF:
            if stop and ch == stop:
                self.sc.next()
                return "".join(result), words.result()
            if ch == "$" or (ch in "'\"" and not self.lx.skip_process_quotes):
                text = self._special(ch)
                result.append(text)
                if ch == "$":
                    words.add_string(text)  # a variable's value is split into words...
                else:
                    words.add_raw_string(text)  # ...quoted text never is
                continue
            if not self._plain(result, words):
                break
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _special(self, ch: str) -> str:
        if ch == "$":
            return self._dollar()
        return self._single_quote() if ch == "'" else self._double_quote()

    def _plain(self, result: list[str], words: _Words) -> bool:
        """One ordinary or escaped character; False when an escape character ends the word (it is dropped)."""
        ch = self.sc.next()
        if ch != self.lx.escape:
            words.add_char(ch)
            result.append(ch)
            return True
        if self.raw_escapes:
            words.add_raw_char(ch)
            result.append(ch)
        ch = self.sc.next()
        if ch == _EOF:
            return False
        words.add_raw_char(ch)
        result.append(ch)
        return True

    def _single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside (as in sh).
        out = self._open_quote()
        while True:
            ch = self.sc.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        # Literal except $ (expanded) and the escape character before ", $ or itself (as in sh).
        out = self._open_quote()
        while True:
            ch = self.sc.peek()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.sc.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            out.append(self._double_quoted_char())

    def _open_quote(self) -> list[str]:
        quote = self.sc.next()
        return [quote] if self.lx.raw_quotes else []

    def _double_quoted_char(self) -> str:
        ch = self.sc.next()
        if ch != self.lx.escape:
            return ch
        kept = ch if self.raw_escapes else ""
        nxt = self.sc.peek()
        if nxt == _EOF:
            return kept
        if nxt in ('"', "$", self.lx.escape):
            return kept + self.sc.next()
        return kept + ch

    def _get(self, name: str) -> str | None:
        return self.env.get(name)

    def _dollar(self) -> str:
        self.sc.next()
        if self.sc.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._get(name)
            if value is None:
                return "$" + name if self.lx.skip_unset_env else ""
            return value
        self.sc.next()
        if self.sc.peek() == _EOF:
            raise _LexError("syntax error: missing '}'")
        if self.sc.peek() in "{}:":
            raise _LexError("syntax error: bad substitution")
        return self._braced(self._name())

    def _braced(self, name: str) -> str:
        ch = self.sc.next()
        if ch == "}":
            value = self._get(name)
            if value is None:
                return "${" + name + "}" if self.lx.skip_unset_env else ""
            return value
        if ch == ":":
            op = self.sc.next()
            return self._modifier(name, op, ":" + op, null_is_unset=True)
        if ch and ch in "+-?#%":
            return self._modifier(name, ch, ch, null_is_unset=False)
        if ch == "/":
            return self._replace(name)
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        raise _LexError(f"unsupported modifier ({ch}) in substitution")

    def _stop_on_brace(self, raw_escapes: bool) -> str:
        try:
            return self.stop_on("}", raw_escapes)[0]
        except _LexError:
            if self.sc.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise

    def _modifier(self, name: str, op: str, written: str, *, null_is_unset: bool) -> str:
        word = self._stop_on_brace(raw_escapes=op in ("#", "%"))
        value = self._get(name)
        if value is None and self.lx.skip_unset_env:
            return "${" + name + written + word + "}"
        missing = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if missing else str(value)
        if op == "+":
            return "" if missing else word
        if op == "?":
            return self._required(name, value, word, missing)
        if op in ("#", "%"):
            return _trim(op, word, value or "")
        raise _LexError(f"unsupported modifier ({written}) in substitution")

    @staticmethod
    def _required(name: str, value: str | None, word: str, missing: bool) -> str:
        if value is None:
            raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
        if missing:
            raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
        return value

    def _replace(self, name: str) -> str:
        replace_all = self.sc.peek() == "/"
        if replace_all:
            self.sc.next()
        try:
            pattern = self.stop_on("/", True)[0]
        except _LexError:
            if self.sc.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._stop_on_brace(raw_escapes=True)
        value = self._get(name)
        if value is None and self.lx.skip_unset_env:
            return "${" + f"{name}/{pattern}/{replacement}" + "}"
        regex = _shell_pattern_regex(pattern, greedy=True, anchored=False)
        return _go_replace(regex, value or "", replacement, replace_all)

    def _name(self) -> str:
        """A variable name: letters, digits and _, or all digits, or one special parameter ($@, $?, ...)."""
        first = self.sc.peek()
        if first and first.isdecimal():
            digits = []
            while self.sc.peek() and self.sc.peek().isdecimal():
                digits.append(self.sc.next())
            return "".join(digits)
        if first and first in _SPECIAL_PARAMS:
            return self.sc.next()
        name = []
        while (ch := self.sc.peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            name.append(self.sc.next())
        return "".join(name)


def _shell_pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A ``${X#pattern}`` shell pattern as a regular expression: ``*`` any string, ``?`` one character."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue  # the escape only protected a closing } or / of ${...}; it is not part of the pattern
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\") or not nxt:
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append("\\" + nxt)
        else:
            out.append("\\" + ch if ch in _REGEX_SPECIALS else ch)
    return re.compile("".join(out))


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each ``\\x`` escape pair in order (lex.go ``reversePattern``)."""
    pairs: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            pairs.append(pattern[i : i + 2])
            i += 2
        else:
            pairs.append(pattern[i])
            i += 1
    return "".join(reversed(pairs))


def _trim(op: str, word: str, value: str) -> str:
    """``${X#p}``/``${X##p}`` strip the shortest/longest prefix match, ``%``/``%%`` the suffix."""
    greedy = word.startswith(op)
    if greedy:
        word = word[1:]
    if op == "#":
        return _trim_prefix(word, value, greedy)
    # Regular expressions cannot find the shortest rightmost match: reverse both and trim a prefix instead.
    return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _go_replace(regex: re.Pattern[str], value: str, replacement: str, replace_all: bool) -> str:
    """Replace like Go's regexp: literally, and ignoring an empty match right after a previous match."""
    if not replace_all:
        match = regex.search(value)
        return value if match is None else value[: match.start()] + replacement + value[match.end() :]
    out: list[str] = []
    last, prev_end = 0, -1
    for match in regex.finditer(value):
        if match.start() == match.end() == prev_end:
            continue
        out.append(value[last : match.start()] + replacement)
        last = prev_end = match.end()
    out.append(value[last:])
    return "".join(out)


def expand(word: str, env: Mapping[str, str], *, shell_form: bool = False, escape: str = "\\") -> str:
    """Docker's substitution of one word (buildkit ``ProcessWord``); unknown variables become "".

    Quotes are removed (single quotes stop substitution, double quotes do not) and ``escape`` escapes the
    next character. ``shell_form=True`` is the mode Docker uses for the body of a COPY/ADD heredoc, text that
    is written out for a program to read: quotes are ordinary characters and stay, ``$VAR`` is substituted
    even between them, and escapes are still processed (buildkit ``ExpandRaw``, moby/buildkit#2442).
    """
    return Lexer(escape=escape, skip_process_quotes=shell_form).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Docker's substitution then word splitting (buildkit ``ProcessWords``), as EXPOSE uses it.

    Whitespace that comes out of a variable splits words (``$PORTS`` = "80 443" gives two), quoted
    whitespace does not, and an empty quoted string makes no word at all.
    """
    return Lexer(escape=escape).process_words(word, env)


# --------------------------------------------------------------------------------------------------------
# Typed instructions
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heredoc:
    """One here-document (``<<EOF`` ... ``EOF``) of a RUN, COPY or ADD, as Docker's parser cut it out.

    ``chomp`` is ``<<-EOF`` (leading tabs are removed from every line: ``body``); ``expand`` is False when
    the delimiter was quoted (``<<"EOF"``, ``<<'EOF'``), which turns substitution in the body off.
    """

    name: str
    content: str
    fd: int = 0
    chomp: bool = False
    expand: bool = True

    @property
    def body(self) -> str:
        """The content as the instruction uses it: tabs at line starts removed for ``<<-``."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """What every instruction has: where it is, what was written, flags and (unexpanded) arguments.

    ``args`` are the arguments as Docker's parser split them, quotes kept (shell form) or decoded (JSON
    form). ``flags`` holds single-valued flags by name without dashes (``{"from": "build"}``; boolean flags
    are "true"/"false"), ``multi_flags`` the repeatable ones (``RUN --mount``, ``COPY --exclude``).
    """

    keyword: str
    args: tuple[str, ...] = ()
    flags: dict[str, str] = field(default_factory=dict)
    multi_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    raw_flags: tuple[str, ...] = ()
    exec_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    filename: str = "Dockerfile"

    @property
    def location(self) -> str:
        """``Dockerfile:LINE``, the prefix of every error about this instruction."""
        return f"{self.filename}:{self.start_line}"

    def error(self, message: str) -> DockerfileError:
        """An error about this instruction, for the builder too (``--from`` naming no stage, a failed RUN)."""
        return _error_at(self.filename, self.start_line, message)


@dataclass(frozen=True, kw_only=True)
class FromInstruction(Instruction):
    """``FROM [--platform=P] image [AS name]``; the stage name is lower-cased as Docker does."""

    image: str
    stage_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class CommandInstruction(Instruction):
    """RUN, CMD and ENTRYPOINT: ``command`` is the JSON array, or a 1-tuple holding the shell text."""

    command: tuple[str, ...] = ()

    @property
    def shell_form(self) -> bool:
        """True when Docker runs the command through SHELL (``/bin/sh -c`` by default)."""
        return not self.exec_form


@dataclass(frozen=True, kw_only=True)
class RunInstruction(CommandInstruction):
    """``RUN``; heredocs (``RUN <<EOF``) are in ``heredocs`` and ``--mount`` in ``multi_flags``."""


@dataclass(frozen=True, kw_only=True)
class CmdInstruction(CommandInstruction):
    """``CMD``: the default command (or the default arguments of ENTRYPOINT)."""


@dataclass(frozen=True, kw_only=True)
class EntrypointInstruction(CommandInstruction):
    """``ENTRYPOINT``: the executable every container of the image starts."""


@dataclass(frozen=True, kw_only=True)
class ShellInstruction(Instruction):
    """``SHELL ["executable", "params"]``; Docker accepts only the JSON form."""

    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CopyInstruction(Instruction):
    """``COPY [--from=..] [--chown=..] [--chmod=..] src... dest``; heredoc sources are in ``inline_files``."""

    sources: tuple[str, ...]
    dest: str
    inline_files: tuple[Heredoc, ...] = ()
    from_ref: str | None = None
    chown: str | None = None
    chmod: str | None = None


@dataclass(frozen=True, kw_only=True)
class AddInstruction(Instruction):
    """``ADD``: COPY plus URLs and local tar archives (unpacked), ``--checksum`` for URLs."""

    sources: tuple[str, ...]
    dest: str
    inline_files: tuple[Heredoc, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    checksum: str | None = None


@dataclass(frozen=True, kw_only=True)
class EnvInstruction(Instruction):
    """``ENV k=v ...`` or the legacy ``ENV k v w`` (one pair, value "v w"); values unexpanded, quotes kept."""

    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False


@dataclass(frozen=True, kw_only=True)
class LabelInstruction(Instruction):
    """``LABEL k=v ...``; keys and values unexpanded, quotes kept."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ArgInstruction(Instruction):
    """``ARG name[=default] ...``; a default of None means none was written (``ARG V``), "" means ``ARG V=``."""

    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class ExposeInstruction(Instruction):
    """``EXPOSE 80/tcp 53/udp``; each entry is expanded with ``expand_words``."""

    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class VolumeInstruction(Instruction):
    """``VOLUME /a /b`` or ``VOLUME ["/a", "/b"]``."""

    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UserInstruction(Instruction):
    """``USER name[:group]``."""

    user: str


@dataclass(frozen=True, kw_only=True)
class WorkdirInstruction(Instruction):
    """``WORKDIR path``; a relative path is relative to the previous WORKDIR (the builder's job)."""

    path: str


@dataclass(frozen=True, kw_only=True)
class StopsignalInstruction(Instruction):
    """``STOPSIGNAL SIGTERM`` or a number."""

    signal: str


@dataclass(frozen=True, kw_only=True)
class MaintainerInstruction(Instruction):
    """``MAINTAINER name`` (deprecated by Docker in favour of a label, still accepted)."""

    maintainer: str


@dataclass(frozen=True, kw_only=True)
class HealthcheckInstruction(Instruction):
    """``HEALTHCHECK NONE`` or ``HEALTHCHECK [opts] CMD ...``; durations in nanoseconds, None when not given.

    ``test`` is what goes into the image config: ``("NONE",)``, ``("CMD", arg, ...)`` for the JSON form or
    ``("CMD-SHELL", "command text")`` for the shell form.
    """

    test: tuple[str, ...]
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class OnbuildInstruction(Instruction):
    """``ONBUILD <instruction>``: ``trigger`` is the parsed inner instruction, ``expression`` the text stored
    in the image config (what a child build parses again with ``parse_triggers``)."""

    trigger: Instruction
    expression: str


# --------------------------------------------------------------------------------------------------------
# From Docker's parser to typed instructions
# --------------------------------------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^#[ \t\n\f\r]*([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*$")
_KNOWN_DIRECTIVES = ("escape", "syntax")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")
_MIN_DURATION_NS = 10**6

# Flags each instruction accepts (buildkit's BFlags): "string", "bool", or "strings" (repeatable).
_FLAG_SPECS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string"},
    "COPY": {"from": "string", "chown": "string", "chmod": "string", "link": "bool", "parents": "bool",
             "exclude": "strings"},
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool", "checksum": "string",
            "exclude": "strings"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string",
                    "start-interval": "string", "retries": "string"},
}  # fmt: skip


@dataclass(frozen=True)
class _Raw:
    """One instruction as Docker's parser returned it, normalised, before it is typed."""

    keyword: str
    written: str
    args: tuple[str, ...]
    raw_flags: tuple[str, ...]
    json: bool
    original: str
    start_line: int
    end_line: int
    heredocs: tuple[Heredoc, ...]
    filename: str

    def error(self, message: str) -> DockerfileError:
        return _error_at(self.filename, self.start_line, message)

    def fields(self) -> dict[str, Any]:
        """The base Instruction fields; ``_typed`` adds the decoded flags."""
        return {
            "keyword": self.keyword, "args": self.args, "raw_flags": self.raw_flags, "exec_form": self.json,
            "heredocs": self.heredocs, "original": self.original, "start_line": self.start_line,
            "end_line": self.end_line, "filename": self.filename,
        }  # fmt: skip


@dataclass(frozen=True)
class _Source:
    """The text being parsed, kept for what the Go wrapper does not return (ONBUILD flags and heredocs)."""

    filename: str
    escape: str
    lines: tuple[str, ...]


def _source_lines(text: str) -> tuple[str, ...]:
    # Go's bufio.ScanLines splits on "\n" only and drops one "\r" before it; str.splitlines would also split
    # on form feeds and other separators and shift every line number after them.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.removesuffix("\r") for line in lines)


def _read_directives(lines: Sequence[str]) -> dict[str, str]:
    """``# escape=`` and ``# syntax=`` at the very top; the first other line (blank too) ends them."""
    found: dict[str, str] = {}
    for number, line in enumerate(lines):
        text = line.removeprefix("\ufeff") if number == 0 else line
        match = _DIRECTIVE.match(text.lstrip())
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        found[match.group(1).lower()] = match.group(2)
    return found


def _go_parse(text: str, filename: str) -> tuple[Any, ...]:
    """Docker's own parser; its errors carry no line, so find the first line prefix that fails the same way."""
    try:
        return tuple(_goparser.parse_string(text))
    except _goparser.GoParseError as exc:
        message = str(exc)
        if message == "file with no instructions":
            raise _error_at(filename, 1, "the Dockerfile is empty: it holds no instruction") from None
        raise _error_at(filename, _failing_line(text, message), message) from None


def _failing_line(text: str, message: str) -> int:
    lines = text.split("\n")
    for count in range(1, len(lines) + 1):
        try:
            _goparser.parse_string("\n".join(lines[:count]))
        except _goparser.GoParseError as exc:
            if str(exc) == message:
                return _instruction_start(lines[: count - 1], count)
    return len(lines)


def _instruction_start(before: list[str], line: int) -> int:
    """The start of the instruction that fails on ``line``: if the lines before it end inside a continued
    instruction (a probe line appended to them joins it instead of becoming a new one), that one."""
    try:
        commands = _goparser.parse_string("\n".join(before))
    except _goparser.GoParseError:
        return line
    try:
        joined = len(_goparser.parse_string("\n".join([*before, "x"]))) == len(commands)
    except _goparser.GoParseError:
        joined = True  # a line "x" of its own never fails (unknown words pass the parser): it was joined
    return commands[-1].start_line if joined else line


def _raw(command: Any, filename: str) -> _Raw:
    return _Raw(
        keyword=command.cmd.upper(),
        written=command.cmd,
        args=tuple(command.value),
        raw_flags=tuple(command.flags),
        json=bool(command.json),
        original=command.original,
        start_line=command.start_line,
        end_line=command.end_line,
        heredocs=_heredocs(command),
        filename=filename,
    )


def _heredoc_marker(word: str) -> Heredoc | None:
    """A ``[n]<<[-]NAME`` word as buildkit reads it (content empty: it comes from the parser's heredoc)."""
    match = _HEREDOC_WORD.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = Lexer(skip_unset_env=True).process_words(rest, {})
        raw = Lexer(skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    except ExpansionError:
        return None
    if len(words) != 1 or len(raw) != 1:
        return None
    # Quoting any part of the delimiter turns expansion off; buildkit detects it by lexing twice.
    quoted = sum(raw[0].count(q) for q in "'\"") != sum(words[0].count(q) for q in "'\"")
    chomp = match.group(2) == "-"
    return Heredoc(name=words[0], content="", fd=int(match.group(1) or 0), chomp=chomp, expand=not quoted)


def _heredoc_markers(line: str) -> list[Heredoc]:
    try:
        words = Lexer(raw_quotes=True).process_words(line, {})
    except ExpansionError:
        return []
    return [marker for word in words if (marker := _heredoc_marker(word)) is not None]


def _heredocs(command: Any) -> tuple[Heredoc, ...]:
    """The parser's heredocs (name, fd, content) joined with what the delimiters say (``<<-``, quotes)."""
    found = tuple(getattr(command, "heredocs", ()) or ())
    if not found:
        return ()
    markers = _heredoc_markers(command.original.split("\n", 1)[0])
    out = []
    for index, doc in enumerate(found):
        marker = markers[index] if index < len(markers) and markers[index].name == doc.name else None
        chomp, expand = (marker.chomp, marker.expand) if marker else (False, True)
        out.append(Heredoc(name=doc.name, content=doc.content, fd=doc.file_descriptor, chomp=chomp, expand=expand))
    return tuple(out)


def _parse_flags(raw: _Raw) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Check and decode ``--name=value`` flags against what the instruction accepts (buildkit BFlags)."""
    spec = _FLAG_SPECS.get(raw.keyword, {})
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for flag in raw.raw_flags:
        if flag == "--":
            break
        name, has_value, value = flag[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            raise raw.error(_unknown_flag(raw.keyword, name, spec))
        if kind == "strings":
            multi.setdefault(name, []).append(_flag_value(raw, name, has_value, value))
        elif name in single:
            raise raw.error(f"{raw.keyword}: duplicate flag --{name}")
        elif kind == "bool":
            single[name] = _bool_flag(raw, name, has_value, value)
        else:
            single[name] = _flag_value(raw, name, has_value, value)
    return single, {name: tuple(values) for name, values in multi.items()}


def _unknown_flag(keyword: str, name: str, spec: Mapping[str, str]) -> str:
    allowed = ", ".join(f"--{known}" for known in spec)
    return f"{keyword}: unknown flag --{name} ({'known flags: ' + allowed if allowed else 'it takes no flags'})"


def _flag_value(raw: _Raw, name: str, has_value: str, value: str) -> str:
    if not has_value:
        raise raw.error(f"{raw.keyword}: missing a value on flag --{name} (write --{name}=VALUE)")
    return value


def _bool_flag(raw: _Raw, name: str, has_value: str, value: str) -> str:
    if has_value and not value:
        raise raw.error(f"{raw.keyword}: missing a value on flag --{name}")
    lowered = value.lower() or "true"
    if lowered not in ("true", "false"):
        raise raw.error(f"{raw.keyword}: expecting boolean value for flag --{name}, not: {value}")
    return lowered


def _unknown_instruction(raw: _Raw) -> DockerfileError:
    suggestion = difflib.get_close_matches(raw.keyword, INSTRUCTIONS, n=1, cutoff=0.6)
    hint = f" (did you mean {suggestion[0]}?)" if suggestion else ""
    return raw.error(f"unknown instruction: {raw.written}{hint}")


def _need_args(raw: _Raw) -> None:
    if not raw.args:
        raise raw.error(f"{raw.keyword} requires at least one argument")


def _typed_from(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    args = raw.args
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise raw.error(
                f'invalid name for build stage: "{args[2]}", name can\'t start with a number or contain symbols'
            )
    elif len(args) != 1:
        raise raw.error("FROM requires either one or three arguments: FROM [--platform=P] IMAGE [AS NAME]")
    return FromInstruction(image=args[0], stage_name=name, platform=fields["flags"].get("platform"), **fields)


_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")  # BuildKit's RUN --mount types


def _typed_command(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    if raw.keyword == "RUN" and not raw.args and not raw.json:
        raise raw.error("RUN requires at least one argument")
    if raw.keyword == "RUN":  # BuildKit's checks of RUN's flags' values
        network, security = fields["flags"].get("network"), fields["flags"].get("security")
        if network not in (None, "default", "none", "host"):
            raise raw.error(f'unsupported network mode "{network}" (RUN --network takes default, none or host)')
        if security not in (None, "sandbox", "insecure"):
            raise raw.error(f'unsupported security mode "{security}" (RUN --security takes sandbox or insecure)')
        for mount in fields["multi_flags"].get("mount", ()):
            options = dict(part.partition("=")[::2] for part in mount.split(",") if part)
            if options.get("type", "bind") not in _MOUNT_TYPES:
                raise raw.error(f'unsupported mount type "{options["type"]}" (RUN --mount takes type='
                                f'{", ".join(_MOUNT_TYPES)})')
    cls = {"RUN": RunInstruction, "CMD": CmdInstruction, "ENTRYPOINT": EntrypointInstruction}[raw.keyword]
    return cls(command=raw.args, **fields)


def _typed_shell(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    if not raw.json and raw.args:
        raise raw.error('SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]')
    _need_args(raw)
    return ShellInstruction(shell=raw.args, **fields)


def _split_sources(raw: _Raw) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    """Sources and destination of COPY/ADD; ``<<NAME`` sources become inline files (heredocs)."""
    if len(raw.args) < 2:
        given = "only one was" if raw.args else "none were"
        raise raw.error(f"{raw.keyword} requires at least two arguments (source and destination), but {given} given")
    *sources, dest = raw.args
    if raw.json or not raw.heredocs:
        return tuple(sources), dest, ()
    if _heredoc_marker(dest) is not None:
        raise raw.error(f"{raw.keyword} cannot accept a heredoc as a destination")
    paths = tuple(src for src in sources if _heredoc_marker(src) is None)
    names = [marker.name for src in sources if (marker := _heredoc_marker(src)) is not None]
    docs = list(raw.heredocs)
    inline = tuple(docs.pop(0) if docs and docs[0].name == name else Heredoc(name=name, content="") for name in names)
    return paths, dest, inline


def _typed_copy(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    sources, dest, inline = _split_sources(raw)
    flags = fields["flags"]
    common = {"sources": sources, "dest": dest, "inline_files": inline, "chown": flags.get("chown"),
              "chmod": flags.get("chmod")}  # fmt: skip
    if raw.keyword == "COPY":
        return CopyInstruction(from_ref=flags.get("from"), **common, **fields)
    return AddInstruction(checksum=flags.get("checksum"), **common, **fields)


def _pairs(raw: _Raw) -> tuple[tuple[str, str], ...]:
    _need_args(raw)
    if len(raw.args) % 2:
        raise raw.error(f"bad input to {raw.keyword}, too many arguments")
    pairs = tuple((raw.args[i], raw.args[i + 1]) for i in range(0, len(raw.args), 2))
    if any(not key for key, _ in pairs):
        raise raw.error(f"{raw.keyword} names can not be blank")
    return pairs


def _is_legacy_env(raw: _Raw) -> bool:
    """``ENV key value words`` (one pair: the rest of the line is the value) rather than ``ENV k=v ...``."""
    words = raw.original.split(None, 2)
    return len(words) > 1 and "=" not in words[1]


def _typed_env(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    if raw.keyword == "LABEL":
        return LabelInstruction(pairs=_pairs(raw), **fields)
    return EnvInstruction(pairs=_pairs(raw), legacy=_is_legacy_env(raw), **fields)


def _typed_arg(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    _need_args(raw)
    pairs: list[tuple[str, str | None]] = []
    for word in raw.args:
        key, has_value, value = word.partition("=")
        if not key:
            raise raw.error("ARG names can not be blank")
        pairs.append((key, value if has_value else None))
    return ArgInstruction(pairs=tuple(pairs), **fields)


def _typed_list(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    _need_args(raw)
    if raw.keyword == "EXPOSE":
        return ExposeInstruction(ports=raw.args, **fields)
    paths = tuple(path.strip() for path in raw.args)
    if any(not path for path in paths):
        raise raw.error("VOLUME specified can not be an empty string")
    return VolumeInstruction(paths=paths, **fields)


def _typed_single(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    if len(raw.args) != 1 or not raw.args[0]:
        raise raw.error(f"{raw.keyword} requires exactly one argument")
    value = raw.args[0]
    if raw.keyword == "USER":
        return UserInstruction(user=value, **fields)
    if raw.keyword == "WORKDIR":
        return WorkdirInstruction(path=value, **fields)
    if raw.keyword == "STOPSIGNAL":
        return StopsignalInstruction(signal=value, **fields)
    return MaintainerInstruction(maintainer=value, **fields)


def _duration_ns(raw: _Raw, name: str, text: str | None) -> int | None:
    """A Go duration ("30s", "1m30s", "1.5h") in nanoseconds; Docker refuses non-zero values under 1ms."""
    if not text:
        return None
    from .units import parse_duration

    try:
        total = parse_duration(text) if not text.startswith("-") else -1
    except ValueError:
        total = -1
    if total < 0:
        raise raw.error(f'HEALTHCHECK: invalid duration "{text}" for --{name} (use e.g. 30s, 1m30s, 500ms)')
    if 0 < total < _MIN_DURATION_NS:
        raise raw.error(f"HEALTHCHECK: --{name} cannot be less than 1ms")
    return total


def _retries(raw: _Raw, text: str | None) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[+-]?\d+", text):
        raise raw.error(f'HEALTHCHECK: --retries must be a whole number, not "{text}"')
    if int(text) < 0:
        raise raw.error(f"HEALTHCHECK: --retries cannot be negative ({int(text)})")
    return int(text)


def _health_test(raw: _Raw) -> tuple[str, ...]:
    """The image config's Healthcheck.Test: NONE, CMD + argv (JSON form) or CMD-SHELL + text."""
    _need_args(raw)
    kind, rest = raw.args[0].upper(), raw.args[1:]
    if kind == "NONE":
        if rest:
            raise raw.error("HEALTHCHECK NONE takes no arguments")
        return ("NONE",)
    if kind != "CMD":
        raise raw.error(f'unknown type "{raw.args[0]}" in HEALTHCHECK (try CMD)')
    if not rest or not "".join(rest).strip():
        raise raw.error("missing command after HEALTHCHECK CMD")
    return ("CMD", *rest) if raw.json else ("CMD-SHELL", rest[0])


def _typed_healthcheck(raw: _Raw, fields: dict[str, Any]) -> Instruction:
    flags = fields["flags"]
    return HealthcheckInstruction(
        test=_health_test(raw),
        interval=_duration_ns(raw, "interval", flags.get("interval")),
        timeout=_duration_ns(raw, "timeout", flags.get("timeout")),
        start_period=_duration_ns(raw, "start-period", flags.get("start-period")),
        start_interval=_duration_ns(raw, "start-interval", flags.get("start-interval")),
        retries=_retries(raw, flags.get("retries")),
        **fields,
    )


_TYPERS: dict[str, Callable[[_Raw, dict[str, Any]], Instruction]] = {
    "FROM": _typed_from,
    "RUN": _typed_command, "CMD": _typed_command, "ENTRYPOINT": _typed_command,
    "SHELL": _typed_shell,
    "COPY": _typed_copy, "ADD": _typed_copy,
    "ENV": _typed_env, "LABEL": _typed_env,
    "ARG": _typed_arg,
    "EXPOSE": _typed_list, "VOLUME": _typed_list,
    "USER": _typed_single, "WORKDIR": _typed_single, "STOPSIGNAL": _typed_single, "MAINTAINER": _typed_single,
    "HEALTHCHECK": _typed_healthcheck,
}  # fmt: skip


def _typed(raw: _Raw) -> Instruction:
    if raw.keyword not in INSTRUCTIONS:
        raise _unknown_instruction(raw)
    flags, multi = _parse_flags(raw)
    fields = raw.fields()
    fields["flags"], fields["multi_flags"] = flags, multi
    return _TYPERS[raw.keyword](raw, fields)


def _onbuild(raw: _Raw, command: Any, source: _Source) -> Instruction:
    """ONBUILD: re-parse the trigger from the source lines, since the wrapper drops its flags and heredocs."""
    if not command.sub_cmd:
        raise raw.error("ONBUILD requires at least one argument")
    lines = list(source.lines[raw.start_line - 1 : raw.end_line])
    lines[0] = _ONBUILD_PREFIX.sub("", lines[0].removeprefix("\ufeff"))
    trigger = _parse_trigger("\n".join(lines), source, raw)
    fields = raw.fields()
    fields["args"] = (trigger.keyword, *trigger.args)
    return OnbuildInstruction(trigger=trigger, expression=trigger.original, **fields)


def _parse_trigger(text: str, source: _Source, outer: _Raw) -> Instruction:
    header = "# escape=`\n" if source.escape == "`" else ""
    try:
        commands = _goparser.parse_string(header + text)
    except _goparser.GoParseError as exc:
        raise outer.error(f"ONBUILD: {exc}") from None
    inner = replace(_raw(commands[0], source.filename), start_line=outer.start_line, end_line=outer.end_line)
    if inner.keyword == "ONBUILD":
        raise outer.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if inner.keyword in ("FROM", "MAINTAINER"):
        raise outer.error(f"{inner.keyword} isn't allowed as an ONBUILD trigger")
    return _typed(inner)


def _instruction(command: Any, source: _Source) -> Instruction:
    raw = _raw(command, source.filename)
    if raw.keyword == "ONBUILD":
        return _onbuild(raw, command, source)
    return _typed(raw)


# --------------------------------------------------------------------------------------------------------
# Stages and the Dockerfile
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` and the instructions after it, up to the next FROM."""

    index: int
    from_instruction: FromInstruction
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        """The ``AS`` name, lower case, or None."""
        return self.from_instruction.stage_name

    @property
    def image(self) -> str:
        """The base as written (unexpanded): an image, another stage's name, or ``scratch``."""
        return self.from_instruction.image


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the ARGs before the first FROM, then the stages in order."""

    filename: str
    escape: str
    directives: dict[str, str]
    args_before_from: tuple[ArgInstruction, ...]
    stages: tuple[Stage, ...]

    @property
    def syntax(self) -> str | None:
        """The ``# syntax=`` directive (it selects a BuildKit frontend; the classic builder ignores it)."""
        return self.directives.get("syntax")

    @property
    def instructions(self) -> list[Instruction]:
        """Every instruction in file order, FROMs included."""
        out: list[Instruction] = list(self.args_before_from)
        for stage in self.stages:
            out.append(stage.from_instruction)
            out.extend(stage.instructions)
        return out

    def stage_index(self, name_or_index: str | int) -> int | None:
        """The stage ``--from=``/``--target`` names (case-insensitive name or number), or None if none does.

        None for a ``--from`` means "an image", which is how Docker reads ``COPY --from=alpine:3 ...``.
        """
        text = str(name_or_index)
        if text.isdecimal():
            return int(text) if int(text) < len(self.stages) else None
        for stage in self.stages:
            if stage.name == text.lower():
                return stage.index
        return None


def _check_text(text: str, filename: str) -> None:
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise _error_at(filename, line, "NUL byte in the Dockerfile (is it a binary file?)")


def _assemble(
    instructions: Sequence[Instruction], filename: str, escape: str, directives: dict[str, str]
) -> Dockerfile:
    before: list[ArgInstruction] = []
    stages: list[tuple[FromInstruction, list[Instruction]]] = []
    for ins in instructions:
        if isinstance(ins, FromInstruction):
            _check_stage_name(ins, stages)
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
        elif isinstance(ins, ArgInstruction):
            before.append(ins)
        else:
            raise ins.error(
                f"{ins.keyword} before the first FROM: a Dockerfile must start with FROM (only ARG may come before it)"
            )
    if not stages:
        raise _error_at(
            filename, instructions[-1].end_line, "no FROM instruction: a Dockerfile needs at least one FROM"
        )
    return Dockerfile(
        filename=filename,
        escape=escape,
        directives=directives,
        args_before_from=tuple(before),
        stages=tuple(Stage(index, head, tuple(body)) for index, (head, body) in enumerate(stages)),
    )


def _check_stage_name(ins: FromInstruction, stages: Sequence[tuple[FromInstruction, list[Instruction]]]) -> None:
    if ins.stage_name and any(head.stage_name == ins.stage_name for head, _ in stages):
        raise ins.error(f'duplicate stage name "{ins.stage_name}"')


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile's text; any problem raises DockerfileError naming ``filename:LINE``."""
    _check_text(text, filename)
    lines = _source_lines(text)
    directives = _read_directives(lines)
    source = _Source(filename=filename, escape=directives.get("escape", "\\"), lines=lines)
    commands = _go_parse(text, filename)
    instructions = [_instruction(command, source) for command in commands]
    return _assemble(instructions, filename, source.escape, directives)


def parse_file(path: str | Path, filename: str | None = None) -> Dockerfile:
    """Parse the Dockerfile at ``path``; errors name ``filename`` (default: the file's own name)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DockerfileError(f"{path}: cannot read the Dockerfile: {exc.strerror}") from None
    return parse(data.decode("utf-8", errors="replace"), filename or path.name)


def parse_triggers(triggers: Iterable[str], filename: str = "ONBUILD") -> list[Instruction]:
    """The ONBUILD triggers of a base image (its config's ``OnBuild`` list), parsed for the child build."""
    out: list[Instruction] = []
    for number, text in enumerate(triggers, start=1):
        source = _Source(filename=filename, escape="\\", lines=_source_lines(text))
        outer = _Raw(keyword="ONBUILD", written="ONBUILD", args=(), raw_flags=(), json=False, original=text,
                     start_line=number, end_line=number, heredocs=(), filename=filename)  # fmt: skip
        out.append(_parse_trigger(text, source, outer))
    return out


# --------------------------------------------------------------------------------------------------------
# ARG and ENV scoping
# --------------------------------------------------------------------------------------------------------


def _env_mapping(env: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """An image config's ``Env`` ("K=V" strings) or a mapping, as an ordered dict (later entries win)."""
    if isinstance(env, Mapping):
        return dict(env)
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


class BuildArgs:
    """The ``--build-arg`` values of one build and the ARG rules of Docker's classic builder (buildargs.go).

    ARGs before the first FROM are global: only FROM lines see them (``global_env``), unless a stage
    declares the same ARG again without a default, which brings the global value in. A ``--build-arg``
    overrides the default of any ARG that declares it. The proxy variables (``BUILTIN_BUILD_ARGS``) need no
    ARG. A ``--build-arg`` that no ARG declares is reported by ``warnings()``.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None, *, escape: str = "\\") -> None:
        self.overrides = dict(overrides or {})
        self.escape = escape
        self._globals: dict[str, str | None] = {}
        self._declared: set[str] = set()

    def declare_global(self, instruction: ArgInstruction) -> list[tuple[str, str | None]]:
        """An ARG before the first FROM; its defaults are expanded with the global ARGs of earlier lines."""
        declared = []
        env = self.global_env()  # one env for the whole line, as the classic builder expands it
        for key, default in instruction.pairs:
            name = expand(key, env, escape=self.escape)
            value = None if default is None else expand(default, env, escape=self.escape)
            self._globals[name] = value
            self._declared.add(name)
            declared.append((name, value))
        return declared

    def global_env(self) -> dict[str, str]:
        """What FROM lines expand with: global ARGs (overridden by --build-arg) and given proxy args."""
        out: dict[str, str] = {}
        for key in [*self._globals, *sorted(BUILTIN_BUILD_ARGS - self._globals.keys())]:
            value = self.overrides.get(key, self._globals.get(key))
            if value is not None:
                out[key] = value
        return out

    def base_image(self, stage: Stage) -> str:
        """The stage's FROM image with the global ARGs substituted; blank is an error as in Docker."""
        image = expand(stage.image, self.global_env(), escape=self.escape)
        if not image:
            raise stage.from_instruction.error(f"base name ({stage.image}) should not be blank")
        return image

    def stage(self, image_env: Mapping[str, str] | Iterable[str] = ()) -> StageScope:
        """A fresh scope for one stage whose base image has ``image_env`` (its config's ``Env``)."""
        return StageScope(self, _env_mapping(image_env))

    def resolve(self, key: str, default: str | None, declared_in_stage: bool) -> str | None:
        """One ARG's value: --build-arg, else its default, else (declared without one) the global value."""
        if key in self.overrides:
            return self.overrides[key] if declared_in_stage or key in BUILTIN_BUILD_ARGS else None
        if default is not None:
            return default
        return self._globals.get(key)

    def consume(self, key: str) -> None:
        """Record that an ARG declared ``key``, so a --build-arg of that name is not reported unused."""
        self._declared.add(key)

    def unused(self) -> list[str]:
        """Build args given but declared by no ARG (proxies excepted), sorted."""
        return sorted(key for key in self.overrides if key not in self._declared and key not in BUILTIN_BUILD_ARGS)

    def warnings(self) -> list[str]:
        """Docker's warning about unused build args, or nothing."""
        unused = self.unused()
        return [f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed"] if unused else []


class StageScope:
    """The variables of one stage while it is built: ENV (the image config) and the ARGs declared so far.

    ENV wins over an ARG of the same name. ARG values are given to RUN as environment variables
    (``run_env``) but are not written into the image; ENV values are (``env``).
    """

    def __init__(self, build_args: BuildArgs, env: dict[str, str]) -> None:
        self.build_args = build_args
        self.env = env
        self._args: dict[str, str | None] = {}

    def run_env(self) -> dict[str, str]:
        """The ARGs visible now with a value, ENV-shadowed ones left out: what RUN gets besides ENV."""
        out: dict[str, str] = {}
        for key in [*self._args, *sorted(BUILTIN_BUILD_ARGS - self._args.keys())]:
            value = self.build_args.resolve(key, self._args.get(key), key in self._args)
            if value is not None and key not in self.env:
                out[key] = value
        return out

    def expansion_env(self) -> dict[str, str]:
        """What ``$VAR`` means in this stage's instructions now: ARGs, then ENV over them."""
        return {**self.run_env(), **self.env}

    def expand(self, word: str) -> str:
        """``expand`` with this stage's variables and the Dockerfile's escape character."""
        return expand(word, self.expansion_env(), escape=self.build_args.escape)

    def expand_words(self, word: str) -> list[str]:
        """``expand_words`` with this stage's variables (for EXPOSE)."""
        return expand_words(word, self.expansion_env(), escape=self.build_args.escape)

    def declare(self, instruction: ArgInstruction) -> list[tuple[str, str | None]]:
        """An ARG inside the stage; like ENV, all pairs of the line see the variables from before the line."""
        declared = []
        env = self.expansion_env()
        escape = self.build_args.escape
        for key, default in instruction.pairs:
            name = expand(key, env, escape=escape)
            value = None if default is None else expand(default, env, escape=escape)
            self._args[name] = value
            self.build_args.consume(name)
            declared.append((name, self.build_args.resolve(name, value, True)))
        return declared

    def set_env(self, instruction: EnvInstruction) -> list[tuple[str, str]]:
        """An ENV line: every pair is expanded with the variables from *before* the line, then stored."""
        env = self.expansion_env()
        escape = self.build_args.escape
        pairs = [
            (expand(key, env, escape=escape), expand(value, env, escape=escape)) for key, value in instruction.pairs
        ]
        for key, value in pairs:
            self.env[key] = value  # a re-set variable keeps its place in the Env list, as in Docker
        return pairs

    def env_list(self) -> list[str]:
        """ENV as an image config writes it: ``["K=V", ...]``."""
        return [f"{key}={value}" for key, value in self.env.items()]
