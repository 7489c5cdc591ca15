"""Table-driven tests for pycontainers.reference against Docker's normalisation rules."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from pycontainers.reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    OFFICIAL_PREFIX,
    InvalidReference,
    Reference,
    is_digest,
    parse,
)

D = "sha256:" + "0123456789abcdef" * 4
D2 = "sha256:" + "f" * 64


def test_constants() -> None:
    assert (DEFAULT_DOMAIN, OFFICIAL_PREFIX, DEFAULT_TAG) == ("docker.io", "library/", "latest")


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("library/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/library/busybox:glibc", "docker.io", "library/busybox", "glibc", None),
        ("index.docker.io/x", "docker.io", "library/x", "latest", None),
        ("index.docker.io/me/x:2", "docker.io", "me/x", "2", None),
        ("me/app:1.0", "docker.io", "me/app", "1.0", None),
        ("me/team/app", "docker.io", "me/team/app", "latest", None),
        ("ghcr.io/me/app", "ghcr.io", "me/app", "latest", None),
        ("ghcr.io/app", "ghcr.io", "app", "latest", None),
        ("quay.io/a/b/c/d:v1", "quay.io", "a/b/c/d", "v1", None),
        # Registry hosts: a dot, a port, "localhost", or uppercase in the first component.
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app", "localhost:5000", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("registry:5000/app", "registry:5000", "app", "latest", None),
        ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", None),
        ("my-registry.example.com/app", "my-registry.example.com", "app", "latest", None),
        ("Registry/app", "Registry", "app", "latest", None),
        ("MyHost.Example.COM:443/app", "MyHost.Example.COM:443", "app", "latest", None),
        ("[::1]/app", "[::1]", "app", "latest", None),
        ("[::1]:5000/app:t", "[::1]:5000", "app", "t", None),
        ("[2001:db8::1]:5000/x/y", "[2001:db8::1]:5000", "x/y", "latest", None),
        # A first component without "/" is always a repository, even when it looks like a host.
        ("localhost", "docker.io", "library/localhost", "latest", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("foo.bar", "docker.io", "library/foo.bar", "latest", None),
        # Path component separators.
        ("a.b_c__d-e--f", "docker.io", "library/a.b_c__d-e--f", "latest", None),
        ("0/9", "docker.io", "0/9", "latest", None),
        # Tag alphabet: word characters, dots and dashes, uppercase allowed, up to 128.
        ("busybox:V1.2-rc_3", "docker.io", "library/busybox", "V1.2-rc_3", None),
        ("busybox:_x", "docker.io", "library/busybox", "_x", None),
        ("busybox:" + "t" * 128, "docker.io", "library/busybox", "t" * 128, None),
        # A digest pins the content, so no default tag is added.
        (f"busybox@{D}", "docker.io", "library/busybox", None, D),
        (f"busybox:1.36@{D}", "docker.io", "library/busybox", "1.36", D),
        (f"localhost:5000/app@{D}", "localhost:5000", "app", None, D),
        (f"localhost:5000/app:v2@{D2}", "localhost:5000", "app", "v2", D2),
    ],
)
def test_parse_normalises(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse(text) == Reference(domain=domain, path=path, tag=tag, digest=digest)


@pytest.mark.parametrize(
    ("text", "name", "familiar_name"),
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("docker.io/library/busybox:1", "docker.io/library/busybox", "busybox"),
        ("me/app:1.0", "docker.io/me/app", "me/app"),
        ("library/a/b", "docker.io/library/a/b", "library/a/b"),
        ("localhost:5000/app", "localhost:5000/app", "localhost:5000/app"),
        ("ghcr.io/library/x", "ghcr.io/library/x", "ghcr.io/library/x"),
        ("[::1]:5000/app", "[::1]:5000/app", "[::1]:5000/app"),
        # Docker would print "foo.bar/x", which re-parses as registry foo.bar; the domain is kept instead.
        ("docker.io/foo.bar/x", "docker.io/foo.bar/x", "docker.io/foo.bar/x"),
        ("docker.io/localhost/x", "docker.io/localhost/x", "docker.io/localhost/x"),
    ],
)
def test_names(text: str, name: str, familiar_name: str) -> None:
    ref = parse(text)
    assert ref.name == name
    assert ref.familiar_name == familiar_name


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
        ("me/app:1.0", "docker.io/me/app:1.0", "me/app:1.0"),
        ("library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
        (f"localhost:5000/app@{D}", f"localhost:5000/app@{D}", f"localhost:5000/app@{D}"),
        (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        ("docker.io/foo.bar/x", "docker.io/foo.bar/x:latest", "docker.io/foo.bar/x:latest"),
    ],
)
def test_string_forms(text: str, canonical: str, familiar: str) -> None:
    ref = parse(text)
    assert str(ref) == canonical
    assert ref.familiar == familiar
    # Both printed forms must parse back to the very same reference.
    assert parse(str(ref)) == ref
    assert parse(ref.familiar) == ref


@pytest.mark.parametrize(
    ("text", "default_tag", "tag", "canonical"),
    [
        ("busybox", None, None, "docker.io/library/busybox"),
        ("busybox", "stable", "stable", "docker.io/library/busybox:stable"),
        ("busybox:1", None, "1", "docker.io/library/busybox:1"),
        ("busybox:1", "stable", "1", "docker.io/library/busybox:1"),
        (f"busybox@{D}", "stable", None, f"docker.io/library/busybox@{D}"),
    ],
)
def test_default_tag(text: str, default_tag: str | None, tag: str | None, canonical: str) -> None:
    ref = parse(text, default_tag=default_tag)
    assert ref.tag == tag
    assert str(ref) == canonical


def test_invalid_default_tag_is_rejected() -> None:
    with pytest.raises(InvalidReference, match=r'"busybox": invalid tag'):
        parse("busybox", default_tag="-bad")


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        ("busybox", "1.36", "docker.io/library/busybox:1.36"),
        (f"busybox:1@{D}", "2", "docker.io/library/busybox:2"),
        (f"localhost:5000/app@{D}", "dev", "localhost:5000/app:dev"),
    ],
)
def test_with_tag(text: str, tag: str, expected: str) -> None:
    ref = parse(text)
    new = ref.with_tag(tag)
    assert str(new) == expected
    assert new.digest is None
    assert (new.domain, new.path) == (ref.domain, ref.path)


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a b", "a:b", "a/b", "é", "t" * 129])
def test_with_tag_rejects_bad_tags(tag: str) -> None:
    ref = parse("busybox")
    with pytest.raises(InvalidReference, match="invalid tag") as info:
        ref.with_tag(tag)
    assert json.dumps(f"docker.io/library/busybox:{tag}", ensure_ascii=False) in str(info.value)


def test_reference_is_frozen() -> None:
    ref = parse("busybox")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (D, True),
        (D2, True),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "g" * 64, False),
        ("SHA256:" + "a" * 64, False),
        ("sha512:" + "a" * 128, False),
        ("a" * 64, False),
        (D + "\n", False),
        (" " + D, False),
        ("", False),
    ],
)
def test_is_digest(text: str, expected: bool) -> None:
    assert is_digest(text) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Exact messages promised by the API.
        ("", "empty name"),
        ("Busybox", "repository name must be lowercase"),
        ("a:b:c", "invalid tag"),
        ("x@sha256:12", "invalid digest (sha256 needs 64 lowercase hex digits)"),
        # Whitespace.
        (" busybox", "leading or trailing whitespace"),
        ("busybox ", "leading or trailing whitespace"),
        ("busybox\n", "leading or trailing whitespace"),
        ("\tbusybox", "leading or trailing whitespace"),
        (" ", "leading or trailing whitespace"),
        ("busy box", "invalid path component"),
        # Uppercase in the repository path (not the domain, not the tag).
        ("me/App", "repository name must be lowercase"),
        ("ghcr.io/Me/app", "repository name must be lowercase"),
        ("Registry/App", "repository name must be lowercase"),
        ("BUSYBOX:Latest", "repository name must be lowercase"),
        # A bare image ID.
        ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
        ("0123456789abcdef" * 4, "cannot specify 64-byte hexadecimal strings"),
        # Empty pieces.
        ("a//b", "empty path component"),
        ("/busybox", "empty path component"),
        ("busybox/", "empty path component"),
        ("ghcr.io/", "empty path component"),
        ("ghcr.io//app", "empty path component"),
        (":latest", "missing repository name"),
        (f"@{D}", "missing repository name"),
        ("busybox:", 'invalid tag (empty after ":")'),
        ("localhost:5000/app:", 'invalid tag (empty after ":")'),
        ("busybox@", 'invalid digest (empty after "@")'),
        (f"busybox:@{D}", 'invalid tag (empty after ":")'),
        # Path component grammar.
        ("-busybox", "invalid path component"),
        ("busybox-", "invalid path component"),
        ("busy..box", "invalid path component"),
        ("busy___box", "invalid path component"),
        ("_busybox", "invalid path component"),
        ("me/.app", "invalid path component"),
        ("busy.box.", "invalid path component"),
        ("busy!box", "invalid path component"),
        ("me/app:1/x", "invalid path component"),
        ("bűsybox", "invalid path component"),
        ("[::1]", "invalid path component"),
        # Domain grammar.
        ("-ghcr.io/app", "invalid registry domain"),
        ("ghcr-.io/app", "invalid registry domain"),
        ("ghcr..io/app", "invalid registry domain"),
        ("localhost:/app", "invalid registry domain"),
        ("localhost:port/app", "invalid registry domain"),
        ("localhost:5000:6000/app", "invalid registry domain"),
        ("gh_cr.io/app", "invalid registry domain"),
        ("[::1/app", "invalid registry domain"),
        ("[zz::1]:5000/app", "invalid registry domain"),
        # Tag grammar.
        ("busybox:-1", "invalid tag"),
        ("busybox:.1", "invalid tag"),
        ("busybox:1+2", "invalid tag"),
        ("busybox:é", "invalid tag"),
        ("busybox:" + "t" * 129, "invalid tag"),
        ("localhost:5000/app:a:b", "invalid tag"),
        # Digest grammar.
        ("busybox@sha256:" + "a" * 63, "sha256 needs 64 lowercase hex digits"),
        ("busybox@sha256:" + "a" * 65, "sha256 needs 64 lowercase hex digits"),
        ("busybox@sha256:" + "A" * 64, "sha256 needs 64 lowercase hex digits"),
        ("busybox@sha256:", "sha256 needs 64 lowercase hex digits"),
        ("busybox@" + "a" * 64, 'invalid digest (expected "sha256:"'),
        ("busybox@sha512:" + "a" * 128, 'unsupported algorithm "sha512"'),
        (f"busybox@{D}@{D}", "invalid digest"),
        (f"busybox@{D}:tag", "sha256 needs 64 lowercase hex digits"),
        # Total name length counts the normalised name, "docker.io/library/" included.
        ("a" * 256, "repository name too long (274 characters, max 255)"),
        ("ghcr.io/" + "a" * 248, "repository name too long (256 characters, max 255)"),
        ("docker.io/me/" + "a" * 250, "repository name too long (263 characters, max 255)"),
    ],
)
def test_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"invalid reference {json.dumps(text, ensure_ascii=False)}: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid reference "": empty name'),
        ("Busybox", 'invalid reference "Busybox": repository name must be lowercase'),
        (
            "x@sha256:12",
            'invalid reference "x@sha256:12": invalid digest (sha256 needs 64 lowercase hex digits)',
        ),
        ("a:b:c", 'invalid reference "a:b:c": invalid tag (must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})'),
    ],
)
def test_exact_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "ghcr.io/" + "a" * 247,  # exactly 255
        "docker.io/library/" + "a" * 237,
        "a" * 237,
        "a" * 63,  # a hex-looking name is fine unless it is exactly 64 hex digits
        "a" * 65,
        "A" * 64 + "/x",
    ],
)
def test_valid_edge_cases(text: str) -> None:
    ref = parse(text)
    assert len(ref.name) <= 255
    assert parse(str(ref)) == ref


def test_pathological_input_fails_fast() -> None:
    # Docker's "[-]*" separator, transcribed literally, backtracks exponentially here (~7 s in CPython 3.11).
    text = "a" * 26 + "!"
    start = time.perf_counter()
    with pytest.raises(InvalidReference, match="invalid path component"):
        parse(text)
    assert time.perf_counter() - start < 1.0
