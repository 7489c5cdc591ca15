"""Table-driven tests for pycontainers.dockerignore against Docker's documented examples and moby's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainers.dockerignore import DockerIgnore, DockerIgnoreError, clean_path
from pycontainers.errors import PyContainersError


def excluded(patterns: list[str], path: str) -> bool:
    return DockerIgnore(patterns).matches(path)


# --- reading the file (ignorefile.ReadAll) ---------------------------------------------------------------


def test_read_all() -> None:
    text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n"
    ignore = DockerIgnore.from_text(text)
    assert [str(p) for p in ignore.patterns] == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path"]
    assert [p.line for p in ignore.patterns] == [1, 2, 3, 5, 7]


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("  spaced  ", "spaced"),
        ("\tdir/\t", "dir"),
        ("./a//b/", "a/b"),
        ("a/../b", "b"),
        ("/", "/"),  # "/" stays "/" (and matches nothing)
        ("!  /x", "!x"),
        (" # not a comment", "# not a comment"),  # only a "#" in column 1 starts a comment
        ("\\#hash", "\\#hash"),
        ("../outside", "../outside"),
        ("line\r", "line"),
    ],
)
def test_read_all_cleaning(line: str, pattern: str) -> None:
    assert [str(p) for p in DockerIgnore.from_text(line).patterns] == [pattern]


def test_read_all_skips_comments_blank_lines_and_bom() -> None:
    ignore = DockerIgnore.from_text("\ufeff# comment\n\n   \n*.log\n")
    assert [(str(p), p.line) for p in ignore.patterns] == [("*.log", 4)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok\n!\n", '.dockerignore:2: illegal exclusion pattern "!" (an exception needs a path)'),
        ("! \n", '.dockerignore:1: illegal exclusion pattern "!" (an exception needs a path)'),
        ("a\nb\n[\n", '.dockerignore:3: bad pattern "[": a character class [...] is not closed'),
        ("[]a]", ".dockerignore:1: bad pattern \"[]a]\": misplaced ']' in a character class"),
        ("[-]", ".dockerignore:1: bad pattern \"[-]\": misplaced '-' in a character class"),
        ("[x-]", ".dockerignore:1: bad pattern \"[x-]\": misplaced ']' in a character class"),
        ("[-x]", ".dockerignore:1: bad pattern \"[-x]\": misplaced '-' in a character class"),
        ("\\", '.dockerignore:1: bad pattern "\\": it ends with an escaping backslash'),
        ("[a-b-c]", ".dockerignore:1: bad pattern \"[a-b-c]\": misplaced '-' in a character class"),
        ("[^", '.dockerignore:1: bad pattern "[^": a character class [...] is not closed'),
        ("[^bc", '.dockerignore:1: bad pattern "[^bc": a character class [...] is not closed'),
        ("a[", '.dockerignore:1: bad pattern "a[": a character class [...] is not closed'),
        # valid for Go's filepath.Match, refused by the regular expression it becomes (moby/moby#52203)
        ("[Local-Only]/", '.dockerignore:1: bad pattern "[Local-Only]": bad character range l-O at position 6'),
    ],
)
def test_malformed_patterns(text: str, message: str) -> None:
    with pytest.raises(DockerIgnoreError) as caught:
        DockerIgnore.from_text(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, PyContainersError)


def test_from_file(tmp_path: Path) -> None:
    assert DockerIgnore.from_file(tmp_path / ".dockerignore").patterns == []  # missing: nothing ignored
    (tmp_path / ".dockerignore").write_text("*.log\n[\n")
    with pytest.raises(DockerIgnoreError, match=r"^\.dockerignore:2: bad pattern"):
        DockerIgnore.from_file(tmp_path / ".dockerignore")


# --- Docker's documented examples ------------------------------------------------------------------------

DOCS_EXAMPLE = "# comment\n*/temp*\n*/*/temp*\ntemp?\n"


@pytest.mark.parametrize(
    ("path", "is_excluded"),
    [
        ("somedir/temporary.txt", True),  # */temp*: names starting with temp one level down
        ("somedir/temp", True),
        ("somedir/temp/inside.txt", True),  # below an excluded directory
        ("somedir/subdir/temporary.txt", True),  # */*/temp*: two levels down
        ("a/b/c/temp", False),  # three levels: no rule
        ("temporary.txt", False),  # at the root: no rule
        ("tempa", True),  # temp?: one character after temp, at the root
        ("tempb", True),
        ("temp", False),
        ("tempab", False),
        ("dir/tempa", True),  # ...but */temp* catches it
        ("comment", False),
    ],
)
def test_docs_temp_example(path: str, is_excluded: bool) -> None:
    assert DockerIgnore.from_text(DOCS_EXAMPLE).matches(path) is is_excluded


@pytest.mark.parametrize(
    ("patterns", "path", "is_excluded"),
    [
        # ** matches any number of directories, including none
        (["**/*.go"], "main.go", True),
        (["**/*.go"], "a/b/c.go", True),
        (["**/*.go"], "main.gox", False),
        # exceptions: the last matching line decides
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["*.md", "!README.md"], "docs/x.md", False),  # *.md is for the root only
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README.md", False),
        (["*.md", "!README*.md", "README-secret.md"], "notes.md", True),
        (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),  # the middle line has no effect
        (["*.md", "README-secret.md", "!README*.md"], "README.md", False),
        # a directory pattern excludes what is below it; /foo/bar and foo/bar are the same
        (["node_modules"], "node_modules", True),
        (["node_modules"], "node_modules/x/y.js", True),
        (["node_modules"], "app/node_modules/x.js", False),  # patterns are relative to the context root
        (["**/node_modules"], "app/node_modules/x.js", True),
        (["/foo/bar"], "foo/bar", True),
        (["foo/bar"], "foo/bar/baz", True),
        (["foo/bar"], "x/foo/bar", False),
        # exceptions re-include a file in an excluded directory
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs", "!docs/README.md"], "docs/other.md", True),
        (["docs/", "!docs/README.md"], "docs/README.md", False),
        (["docs/*", "!docs/README.md"], "docs/README.md", False),
        # "include only": * then exceptions
        (["*", "!src", "!go.mod"], "src/main.go", False),
        (["*", "!src", "!go.mod"], "go.mod", False),
        (["*", "!src", "!go.mod"], "vendor/x", True),
        # later lines win, for files and directories alike
        (["!keep", "keep"], "keep", True),
        (["keep", "!keep"], "keep", False),
        (["!fileutils.go", "*.go"], "fileutils.go", True),
        (["*.go", "!fileutils.go"], "fileutils.go", False),
        (["foo", "!foo/bar", "foo"], "foo/bar", True),
    ],
)
def test_docs_and_rules(patterns: list[str], path: str, is_excluded: bool) -> None:
    assert excluded(patterns, path) is is_excluded


@pytest.mark.parametrize("path", [".", "", "./", "/"])
def test_the_context_root_is_never_excluded(path: str) -> None:
    assert not excluded(["*", "**", "."], path)


def test_paths_are_cleaned_before_matching() -> None:
    assert excluded(["a/b"], "/a/b") and excluded(["a/b"], "./a//b/") and excluded(["a/b"], "a/c/../b")


# --- moby patternmatcher TestMatches (MatchesOrParentMatches) --------------------------------------------

EXACT, INEXACT, FAIL = "exact", "inexact", "fail"
PATTERNMATCHER_CASES = [
    ("**", "file", EXACT), ("**", "file/", EXACT), ("**/", "file", EXACT), ("**/", "file/", EXACT),
    ("**", "dir/file", EXACT), ("**/", "dir/file", EXACT), ("**", "dir/file/", EXACT), ("**/", "dir/file/", EXACT),
    ("**/**", "dir/file", EXACT), ("**/**", "dir/file/", EXACT), ("dir/**", "dir/file", EXACT),
    ("dir/**", "dir/file/", EXACT), ("dir/**", "dir/dir2/file", EXACT), ("dir/**", "dir/dir2/file/", EXACT),
    ("**/dir", "dir", EXACT), ("**/dir", "dir/file", INEXACT), ("**/dir2/*", "dir/dir2/file", EXACT),
    ("**/dir2/*", "dir/dir2/file/", INEXACT), ("**/dir2/**", "dir/dir2/dir3/file", EXACT),
    ("**/dir2/**", "dir/dir2/dir3/file/", EXACT), ("**file", "file", EXACT), ("**file", "dir/file", EXACT),
    ("**/file", "dir/file", EXACT), ("**file", "dir/dir/file", EXACT), ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file", EXACT), ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT), ("**/file*.txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT), ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL), ("**/*.txt", "file.txt", EXACT), ("**/**/*.txt", "file.txt", EXACT),
    ("a**/*.txt", "a/file.txt", EXACT), ("a**/*.txt", "a/dir/file.txt", EXACT),
    ("a**/*.txt", "a/dir/dir/file.txt", EXACT), ("a/*.txt", "a/dir/file.txt", FAIL), ("a/*.txt", "a/file.txt", EXACT),
    ("a/*.txt**", "a/file.txt", EXACT), ("a[b-d]e", "ae", FAIL), ("a[b-d]e", "ace", EXACT), ("a[b-d]e", "aae", FAIL),
    ("a[^b-d]e", "aze", EXACT), (".*", ".foo", EXACT), (".*", "foo", FAIL), ("abc.def", "abcdef", FAIL),
    ("abc.def", "abc.def", EXACT), ("abc.def", "abcZdef", FAIL), ("abc?def", "abcZdef", EXACT),
    ("abc?def", "abcdef", FAIL), ("**/foo/bar", "foo/bar", EXACT), ("**/foo/bar", "dir/foo/bar", EXACT),
    ("**/foo/bar", "dir/dir2/foo/bar", EXACT), ("abc/**", "abc", FAIL), ("abc/**", "abc/def", EXACT),
    ("abc/**", "abc/def/ghi", EXACT), ("**/.foo", ".foo", EXACT), ("**/.foo", "bar.foo", FAIL),
    ("a(b)c/def", "a(b)c/def", EXACT), ("a(b)c/def", "a(b)c/xyz", FAIL), ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT), ("a\\*b", "a*b", EXACT),
    ("**file", "myfile", EXACT),  # "**" at the start is a plain suffix test
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "path", "kind"), PATTERNMATCHER_CASES)
def test_patternmatcher_matches(pattern: str, path: str, kind: str) -> None:
    assert excluded([pattern], path) is (kind != FAIL)


@pytest.mark.parametrize(
    ("patterns", "path", "is_excluded"),
    [
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
         "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    ],
)  # fmt: skip
def test_patternmatcher_multi(patterns: list[str], path: str, is_excluded: bool) -> None:
    assert excluded(patterns, path) is is_excluded


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("*", "regexp"), ("file*", "regexp"), ("a*/b", "regexp"), ("**", "suffix"), ("**/**", "regexp"),
        ("dir/**", "prefix"), ("**/dir", "suffix"), ("**/dir2/*", "regexp"), ("**file", "suffix"),
        ("a[b-d]e", "regexp"), (".*", "regexp"), ("abc.def", "exact"), ("abc?def", "regexp"),
        ("**/foo/bar", "suffix"), ("a(b)c/def", "exact"), ("a.|)$(}+{bc", "exact"),
    ],
)  # fmt: skip
def test_pattern_kinds(pattern: str, kind: str) -> None:
    assert DockerIgnore([pattern]).patterns[0].kind == kind


# --- Go filepath.Match semantics (the tests moby copied from Go) ------------------------------------------

GO_MATCH_CASES = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", True),  # through the parent directory "ab"
    ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False),  # * and ? never match "/"
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("*x", "xxx", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "path", "is_excluded"), GO_MATCH_CASES)
def test_go_filepath_match(pattern: str, path: str, is_excluded: bool) -> None:
    assert excluded([pattern], path) is is_excluded


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."), (".", "."), ("a", "a"), ("a/", "a"), ("a//b", "a/b"), ("a/./b", "a/b"), ("a/../b", "b"),
        ("a/..", "."), ("../a", "../a"), ("../../a/..", "../.."), ("/..", "/"), ("/../a", "/a"), ("//a//", "/a"),
        ("abc/def/../../..", ".."), ("/abc/def/../../..", "/"),
    ],
)  # fmt: skip
def test_clean_path(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


# --- walking a build context --------------------------------------------------------------------------


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)


def walk(root: Path, ignore: str, **kwargs: str) -> list[str]:
    (root / ".dockerignore").write_text(ignore)
    return DockerIgnore.from_file(root / ".dockerignore").walk(root, **kwargs)


def test_walk_without_patterns(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "b/c.txt", "a.txt", "empty/"])
    assert DockerIgnore().walk(tmp_path) == ["Dockerfile", "a.txt", "b", "b/c.txt", "empty"]


def test_walk_excludes_files_and_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "app.py", "debug.log", "node_modules/x/index.js", "src/a.log", "src/a.py"])
    assert walk(tmp_path, "*.log\nnode_modules\n") == [
        ".dockerignore", "Dockerfile", "app.py", "src", "src/a.log", "src/a.py",
    ]  # fmt: skip


def test_walk_exception_inside_excluded_directory(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "vendor/keep/k.txt", "vendor/drop.txt", "vendor/sub/x"])
    # vendor is walked because "!vendor/keep" starts with "vendor/"; vendor itself is not sent
    assert walk(tmp_path, "vendor\n!vendor/keep\n") == [
        ".dockerignore", "Dockerfile", "vendor/keep", "vendor/keep/k.txt",
    ]  # fmt: skip


def test_walk_include_only(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "go.mod", "src/main.go", "src/pkg/util.go", "docs/x.md", "README.md"])
    assert walk(tmp_path, "*\n!src\n!go.mod\n") == [
        ".dockerignore", "Dockerfile", "go.mod", "src", "src/main.go", "src/pkg", "src/pkg/util.go",
    ]  # fmt: skip


def test_walk_exception_with_wildcards_does_not_open_directories(tmp_path: Path) -> None:
    # Docker's Exclusions() logic only walks an excluded directory when an exception's text starts with its
    # path, so "!**/*.go" re-includes top-level .go files but not src/main.go.
    make_tree(tmp_path, ["Dockerfile", "main.go", "src/main.go", "notes.txt"])
    assert walk(tmp_path, "*\n!**/*.go\n") == [".dockerignore", "Dockerfile", "main.go"]


def test_walk_always_sends_dockerfile_and_dockerignore(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "other"])
    ignore = DockerIgnore.from_text("Dockerfile\n.dockerignore\nother\n")
    (tmp_path / ".dockerignore").write_text("x")
    assert ignore.walk(tmp_path) == [".dockerignore", "Dockerfile"]
    # ...but the file still excludes them, which tells COPY . to leave them out
    assert ignore.matches("Dockerfile") and ignore.matches(".dockerignore")


def test_walk_custom_dockerfile_inside_excluded_directory(tmp_path: Path) -> None:
    make_tree(tmp_path, ["build/Dockerfile.dev", "build/secret", "app.py"])
    assert DockerIgnore.from_text("build\n").walk(tmp_path, dockerfile="build/Dockerfile.dev") == [
        "app.py", "build/Dockerfile.dev",
    ]  # fmt: skip
    assert DockerIgnore.from_text("*\n").walk(tmp_path, dockerfile="../elsewhere/Dockerfile") == []


def test_walk_lists_symlinks_without_following_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_tree(outside, ["secret.txt", "dir/deep.txt"])
    context = tmp_path / "ctx"
    make_tree(context, ["Dockerfile", "real/file.txt"])
    (context / "link-to-dir").symlink_to(outside / "dir")
    (context / "link-to-file").symlink_to(outside / "secret.txt")
    (context / "dangling").symlink_to(tmp_path / "nowhere")
    (context / "real" / "loop").symlink_to(context / "real")
    assert DockerIgnore().walk(context) == [
        "Dockerfile", "dangling", "link-to-dir", "link-to-file", "real", "real/file.txt", "real/loop",
    ]  # fmt: skip
    assert DockerIgnore(["link-*"]).walk(context) == ["Dockerfile", "dangling", "real", "real/file.txt", "real/loop"]


def test_walk_skips_special_files(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile"])
    os.mkfifo(tmp_path / "fifo")
    assert DockerIgnore().walk(tmp_path) == ["Dockerfile"]


def test_walk_sorted_and_later_lines_win(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Dockerfile", "a-b", "a/b", "a/c", "z.md", "README.md", "README-secret.md"])
    assert walk(tmp_path, "*.md\n!README*.md\nREADME-secret.md\na/c\n") == [
        ".dockerignore", "Dockerfile", "README.md", "a", "a-b", "a/b",
    ]  # fmt: skip


def test_walk_unreadable_context(tmp_path: Path) -> None:
    with pytest.raises(DockerIgnoreError, match="cannot read the build context"):
        DockerIgnore().walk(tmp_path / "missing")
