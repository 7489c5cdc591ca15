"""``.dockerignore``: which files of a build context are sent to the builder, decided the way Docker decides.

A port of moby's ``ignorefile.ReadAll`` (reading the file), ``patternmatcher`` (matching) and the walk of
``archive.TarWithOptions`` (what the docker CLI puts in the context tarball):

* A line whose first character is ``#`` is a comment; blank lines are skipped; other lines are trimmed,
  cleaned like Go's ``filepath.Clean`` and lose one leading ``/`` (the context is the root).
* ``!pattern`` is an exception that re-includes what earlier lines excluded; the last line that matches a
  path decides.
* ``*`` and ``?`` never match ``/``; ``[...]`` is a character class; ``\\`` escapes; ``**`` matches any
  number of directories, none included (``**/*.go`` matches ``main.go`` too).
* A pattern that matches a directory excludes everything below it. An excluded directory is still walked
  when an exception pattern *starts with* that directory's path (``vendor`` + ``!vendor/keep``); the
  directory entry itself is not sent, only the files re-included below it (Docker's ``Exclusions()`` logic,
  which also means ``*`` + ``!**/*.go`` does not reach into subdirectories: write ``!src`` or a path).
* The Dockerfile and ``.dockerignore`` are always sent, because the builder needs them; ``matches()`` still
  says whether the file excluded them, which is what tells ``COPY .`` to leave them out.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pycontainers.errors import PyContainersError

__all__ = ["DockerIgnore", "DockerIgnoreError", "Pattern", "clean_path"]

_REGEX_ESCAPED = frozenset(".+()|{}$")


class DockerIgnoreError(PyContainersError):
    """A ``.dockerignore`` Docker would refuse (a malformed pattern), or a context that cannot be read."""


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: one slash between names, no ``.``, ``..`` resolved lexically, "" becomes "."."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            out.append(part)
        elif out and out[-1] != "..":
            out.pop()
        elif not rooted:
            out.append("..")
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _dir(path: str) -> str:
    """Go's ``filepath.Dir`` for a cleaned relative path."""
    head = path.rpartition("/")[0]
    return clean_path(head) if head else "."


@dataclass(frozen=True)
class Pattern:
    """One line of the file after reading: the cleaned pattern, whether it is an exception, its line."""

    text: str
    exclusion: bool
    line: int
    kind: str
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        """Whether ``path`` (cleaned, relative, slash-separated) matches this pattern alone."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            # "**/foo" also matches "foo" at the top.
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def _validate(pattern: str) -> str | None:
    """Go's ``filepath.Match`` syntax check: why the pattern is malformed, or None."""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                return "it ends with an escaping backslash"
            i += 2
        elif ch == "[":
            i, problem = _validate_class(pattern, i + 1)
            if problem:
                return problem
        else:
            i += 1
    return None


def _validate_class(pattern: str, i: int) -> tuple[int, str | None]:
    """Check a ``[...]`` class starting after its ``[``; return where it ends and any problem."""
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    ranges = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return i + 1, None
        i, problem = _class_char(pattern, i)
        if problem:
            return i, problem
        if i < len(pattern) and pattern[i] == "-":
            i, problem = _class_char(pattern, i + 1)
            if problem:
                return i, problem
        ranges += 1


def _class_char(pattern: str, i: int) -> tuple[int, str | None]:
    if i >= len(pattern):
        return i, "a character class [...] is not closed"
    if pattern[i] in "-]":
        return i, f"misplaced {pattern[i]!r} in a character class"
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            return i, "a character class [...] is not closed"
    i += 1
    if i >= len(pattern):
        return i, "a character class [...] is not closed"
    return i, None


def _compile(pattern: str) -> tuple[str, str]:
    """The match kind and regular expression of a cleaned pattern (patternmatcher ``compile``)."""
    out = ["^"]
    kind = "exact"
    i, first = 0, True
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*" and i < len(pattern) and pattern[i] == "*":
            i += 1
            if i < len(pattern) and pattern[i] == "/":
                i += 1  # "**/" is read as "**"
            kind = _double_star(out, kind, at_end=i >= len(pattern), first=first)
        elif ch in "*?":
            out.append("[^/]*" if ch == "*" else "[^/]")
            kind = "regexp"
        elif ch in _REGEX_ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(pattern):
                out.append("\\" + pattern[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    # \Z, not $: Python's $ also matches before a final newline, Go's does not.
    return kind, "".join(out) + r"\Z"


def _double_star(out: list[str], kind: str, *, at_end: bool, first: bool) -> str:
    """``**`` (with its ``/``, if any): any number of directories; the pattern kind it leaves."""
    if at_end:
        if kind == "exact":
            kind = "prefix"
        else:
            out.append(".*")
            kind = "regexp"
    else:
        out.append("(.*/)?")
        kind = "regexp"
    return "suffix" if first else kind


def _normalize(line: str) -> str | None:
    """One line as ignorefile.ReadAll keeps it: trimmed, cleaned, one leading "/" dropped; None if blank."""
    line = line.strip()
    if not line:
        return None
    invert = line.startswith("!")
    if invert:
        line = line[1:].strip()
    if line:
        line = clean_path(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
    return "!" + line if invert else line


def _read_lines(text: str) -> list[tuple[int, str]]:
    """ignorefile.ReadAll: the patterns with their line numbers; "#" in column 1 and blank lines dropped."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if number == 1:
            line = line.removeprefix("\ufeff")
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = _normalize(line)
        if pattern is not None:
            out.append((number, pattern))
    return out


def _pattern(text: str, line: int, filename: str) -> Pattern:
    """patternmatcher.New for one line: clean, split off ``!``, check the syntax, compile."""
    text = clean_path(text)
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise DockerIgnoreError(f'{filename}:{line}: illegal exclusion pattern "!" (an exception needs a path)')
        text = text[1:]
    problem = _validate(text)
    if problem:
        raise DockerIgnoreError(f'{filename}:{line}: bad pattern "{text}": {problem}')
    kind, source = _compile(text)
    regex = None
    if kind == "regexp":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Python warns about "[[" that Go's regexp reads plainly
                regex = re.compile(source)
        except re.error as exc:
            raise DockerIgnoreError(f'{filename}:{line}: bad pattern "{text}": {exc}') from None
    return Pattern(text=text, exclusion=exclusion, line=line, kind=kind, regex=regex)


class DockerIgnore:
    """The patterns of one ``.dockerignore`` and the two questions a build asks of them."""

    def __init__(self, patterns: Sequence[str] = (), *, filename: str = ".dockerignore") -> None:
        """``patterns`` one per entry, normalised like file lines ("/a" is "a"); no comment handling."""
        self.filename = filename
        self.patterns = [
            _pattern(text, number, filename)
            for number, line in enumerate(patterns, start=1)
            if (text := _normalize(line)) is not None
        ]

    @classmethod
    def from_text(cls, text: str, *, filename: str = ".dockerignore") -> DockerIgnore:
        """Read the text of a ``.dockerignore``; errors name ``filename:LINE``."""
        ignore = cls(filename=filename)
        ignore.patterns = [_pattern(line, number, filename) for number, line in _read_lines(text)]
        return ignore

    @classmethod
    def from_file(cls, path: str | Path) -> DockerIgnore:
        """Read ``path``; a missing file means nothing is ignored, as in Docker."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(filename=path.name)
        except OSError as exc:
            raise DockerIgnoreError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.from_text(data.decode("utf-8", errors="replace"), filename=path.name)

    @property
    def has_exceptions(self) -> bool:
        """Whether any ``!`` line exists (only then can an excluded directory hold included files)."""
        return any(pattern.exclusion for pattern in self.patterns)

    def matches(self, relpath: str) -> bool:
        """Whether the file excludes ``relpath`` (relative to the context, "/"-separated): the last line that
        matches it or one of its parent directories decides (patternmatcher ``MatchesOrParentMatches``)."""
        path = clean_path(relpath.lstrip("/"))
        if path == ".":
            return False  # the context root itself is never excluded
        return _excluded(self.patterns, path)

    def walk(self, context_dir: str | Path, *, dockerfile: str = "Dockerfile") -> list[str]:
        """The paths sent as the build context: files, directories and symlinks, sorted, "/"-separated.

        Symlinks are listed, never followed. ``dockerfile`` (relative to the context) and ``.dockerignore``
        are always included, as the docker CLI does for the builder.
        """
        patterns = self.patterns + self._keep_build_files(dockerfile)
        found: list[str] = []
        _walk(Path(context_dir), "", patterns, found)
        return sorted(found)

    def _keep_build_files(self, dockerfile: str) -> list[Pattern]:
        """Exceptions for the Dockerfile and .dockerignore when excluded (``TrimBuildFilesFromExcludes``)."""
        keep = []
        for name in (".dockerignore", clean_path(dockerfile.lstrip("/"))):
            if not name.startswith("../") and name not in (".", "..") and self.matches(name):
                keep.append(_pattern("!" + name, 0, self.filename))
        return keep


def _excluded(patterns: Sequence[Pattern], path: str) -> bool:
    matched = False
    parent = _dir(path)
    parents = [] if parent == "." else parent.split("/")
    for pattern in patterns:
        if pattern.exclusion != matched:
            continue  # this line could not change the answer
        hit = pattern.match(path) or any(pattern.match("/".join(parents[: n + 1])) for n in range(len(parents)))
        if hit:
            matched = not pattern.exclusion
    return matched


def _walk(root: Path, rel_dir: str, patterns: Sequence[Pattern], found: list[str]) -> None:
    directory = root / rel_dir if rel_dir else root
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise DockerIgnoreError(f"{directory}: cannot read the build context: {exc.strerror}") from None
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            raise DockerIgnoreError(f"{entry.path}: cannot stat in the build context: {exc.strerror}") from None
        is_dir = stat.S_ISDIR(mode)
        if _excluded(patterns, rel):
            if is_dir and _exception_inside(patterns, rel):
                _walk(root, rel, patterns, found)  # walked for the exceptions, but not sent itself
            continue
        if is_dir:
            found.append(rel)
            _walk(root, rel, patterns, found)
        elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            found.append(rel)


def _exception_inside(patterns: Sequence[Pattern], rel_dir: str) -> bool:
    """Docker walks an excluded directory only if an exception's text starts with the directory's path."""
    prefix = rel_dir + "/"
    return any(pattern.exclusion and (pattern.text + "/").startswith(prefix) for pattern in patterns)
