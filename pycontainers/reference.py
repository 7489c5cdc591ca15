"""Image references ("busybox", "ghcr.io/me/app:1.0@sha256:...") parsed and normalised the way Docker does.

Mirrors distribution/reference (``ParseNormalizedNamed`` / ``FamiliarString``) so that a name typed by a user
resolves to the same registry, repository, tag and digest it would under ``docker pull``. The parser works
piece by piece instead of through one big regular expression, so each rejection can say which rule was broken.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from .errors import PyContainersError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "OFFICIAL_PREFIX",
    "InvalidReference",
    "Reference",
    "is_digest",
    "parse",
]

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_NAME_TOTAL_LENGTH_MAX = 255

# Docker writes the separator as ``[-]*``; ``-+`` accepts the same names without the nested-quantifier
# backtracking that makes Python's re exponential on long invalid components.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?",
    re.ASCII,
)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)

_TAG_RULE = "must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_PATH_RULE = 'lowercase letters and digits, separated by ".", "_", "__" or "-"'


class InvalidReference(PyContainersError, ValueError):
    """A string that is not a valid image reference; the message names the input and the rule broken."""


def _invalid(text: str, reason: str) -> InvalidReference:
    # json.dumps quotes like Go's %q and escapes newlines, so the message always stays on one line.
    return InvalidReference(f"invalid reference {json.dumps(text, ensure_ascii=False)}: {reason}")


@dataclass(frozen=True)
class Reference:
    """A fully normalised reference: explicit domain and path, so equal images compare equal."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """Canonical repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short name Docker prints (``busybox``, ``me/app``), which parses back to this repository."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        rest = path.removeprefix(OFFICIAL_PREFIX)
        if rest != path and "/" not in rest:
            path = rest
        # Docker would print docker.io/foo.bar/x as "foo.bar/x", which re-parses as registry "foo.bar";
        # keep the domain in that (Hub-impossible) case so the familiar form always round-trips.
        first, slash, _ = path.partition("/")
        if slash and _looks_like_domain(first):
            return self.name
        return path

    @property
    def familiar(self) -> str:
        """Familiar name plus ``:tag`` and/or ``@digest``, as ``docker images`` shows it."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """Same repository at another tag; the digest is dropped because it pinned the old content."""
        _check_tag(f"{self.name}:{tag}", tag)
        return replace(self, tag=tag, digest=None)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (
            f"@{self.digest}" if self.digest is not None else ""
        )

    def __str__(self) -> str:
        return self.name + self._suffix()


def is_digest(text: str) -> bool:
    """True for a content digest this engine can verify: ``sha256:`` and 64 lowercase hex digits."""
    return _DIGEST.fullmatch(text) is not None


def parse(text: str, *, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise ``text`` as ``docker pull`` would; raise InvalidReference explaining any fault.

    ``default_tag`` is applied only when neither a tag nor a digest is given (a digest already pins the
    content, so Docker adds no ``latest``); pass ``None`` to keep the tag unset.
    """
    if text == "":
        raise _invalid(text, "empty name")
    if text != text.strip():
        raise _invalid(text, "leading or trailing whitespace")
    if _IDENTIFIER.fullmatch(text):
        # Docker refuses these so an image ID can never be mistaken for a repository name.
        raise _invalid(text, "cannot specify 64-byte hexadecimal strings")

    name, at, digest = text.partition("@")
    # A tag cannot contain "/", so its ":" is the first one after the last "/" (earlier ones are ports).
    slash = name.rfind("/") + 1
    repo, colon, tag = name[slash:].partition(":")
    repo = name[:slash] + repo
    if repo == "":
        raise _invalid(text, "missing repository name")

    domain, path = _split_domain(repo)
    if path != path.lower():
        raise _invalid(text, "repository name must be lowercase")
    if not _DOMAIN.fullmatch(domain):
        raise _invalid(text, f"invalid registry domain {json.dumps(domain)} (expected host[:port])")
    for component in path.split("/"):
        if component == "":
            raise _invalid(text, 'empty path component (nothing between "/" separators)')
        if not _PATH_COMPONENT.fullmatch(component):
            raise _invalid(text, f"invalid path component {json.dumps(component)} ({_PATH_RULE})")
    full_length = len(domain) + 1 + len(path)
    if full_length > _NAME_TOTAL_LENGTH_MAX:
        raise _invalid(
            text, f"repository name too long ({full_length} characters, max {_NAME_TOTAL_LENGTH_MAX})"
        )

    if colon:
        _check_tag(text, tag)
    if at:
        _check_digest(text, digest)

    final_tag: str | None = tag if colon else None
    if final_tag is None and not at and default_tag is not None:
        _check_tag(text, default_tag)
        final_tag = default_tag
    return Reference(domain=domain, path=path, tag=final_tag, digest=digest if at else None)


def _looks_like_domain(component: str) -> bool:
    # Docker's heuristic: a registry host has a dot or port, is localhost, or is not a valid (lowercase) path.
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def _split_domain(repo: str) -> tuple[str, str]:
    first, slash, rest = repo.partition("/")
    if slash and _looks_like_domain(first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, repo
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def _check_tag(text: str, tag: str) -> None:
    if tag == "":
        raise _invalid(text, 'invalid tag (empty after ":")')
    if not _TAG.fullmatch(tag):
        raise _invalid(text, f"invalid tag ({_TAG_RULE})")


def _check_digest(text: str, digest: str) -> None:
    if digest == "":
        raise _invalid(text, 'invalid digest (empty after "@")')
    if _DIGEST.fullmatch(digest):
        return
    algorithm, colon, _ = digest.partition(":")
    if not colon:
        raise _invalid(text, 'invalid digest (expected "sha256:" and 64 lowercase hex digits)')
    if algorithm != "sha256":
        raise _invalid(text, f"invalid digest (unsupported algorithm {json.dumps(algorithm)}, only sha256)")
    raise _invalid(text, "invalid digest (sha256 needs 64 lowercase hex digits)")
