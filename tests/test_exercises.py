"""Self-checking exercises: right answers pass, wrong ones get a hint, placeholders never raise."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from demo_images import BIG, build_app, build_demo
from processes import wait_for

from pycontainers import views
from pycontainers.api import Client, Container
from pycontainers.build import BuildResult, build
from pycontainers.container import processes
from pycontainers.exercises import (
    Check,
    as_bytes,
    check_cache_misses,
    check_containers_per_vm,
    check_cpu_counts,
    check_default_greeting,
    check_full_names,
    check_history_and_layers,
    check_host_pid,
    check_image_size_after_delete,
    check_install_stays_cached,
    check_no_wasted_bytes,
    check_oom_killed,
    check_own_namespaces,
    check_pulled_by_digest,
    check_push_prediction,
    check_slowest_vm_phase,
    check_stats_limit,
    check_stored_bytes,
    push_outcome,
)
from pycontainers.image import Image, ImageBuilder, get_image
from pycontainers.registry import LocalRegistry, progress_line
from pycontainers.store import Store
from pycontainers.units import human_size, parse_size


def build_fixed(store: Store, tag: str, text: str = "hello, layers\n") -> Image:
    b = ImageBuilder(store, "busybox")
    with b.layer("COPY greeting.txt /app/") as ch:
        ch.add_file("/app/greeting.txt", text)
    return b.commit(tag)


@pytest.fixture
def client(busybox_store: Store) -> Client:
    return Client(busybox_store.home)


def assert_unanswered(check: Check) -> None:
    assert not check.ok and not check.answered
    assert str(check).startswith("… Not answered yet:") and "Hint" not in str(check)
    assert "Not answered yet:" in check._repr_html_() and "Hint" not in check._repr_html_()


def assert_wrong(check: Check, *hint_words: str) -> None:
    assert not check.ok and check.answered and check.hint
    assert str(check).startswith("✗") and "Hint:" in str(check)
    for word in hint_words:
        assert word in check.hint
    assert "#b3261e" in check._repr_html_() and "Hint" in check._repr_html_()


def assert_not_checkable(check: Check) -> None:
    """This machine cannot measure the truth: grey, neither a cross nor a tick, and no hint."""
    assert not check.ok and not check.checkable
    assert str(check).startswith("– Cannot be checked here:") and "✗" not in str(check) and "Hint" not in str(check)
    assert "#b3261e" not in check._repr_html_() and "Cannot be checked here:" in check._repr_html_()


def assert_right(check: Check) -> None:
    assert check.ok and check.answered and bool(check)
    assert str(check).startswith("✓") and "#1a7f37" in check._repr_html_()


# --------------------------------------------------------------------------------------------- Check


def test_check_renders_text_and_escaped_html() -> None:
    wrong = Check(False, "<img src=x> is wrong", hint="use <b>bytes</b>")
    assert repr(wrong) == str(wrong) == "✗ <img src=x> is wrong\n  Hint: use <b>bytes</b>"
    html = wrong._repr_html_()
    assert "&lt;img src=x&gt;" in html and "&lt;b&gt;bytes&lt;/b&gt;" in html and "<img" not in html
    assert not wrong
    assert str(Check(True, "fine")) == "✓ fine"


@pytest.mark.parametrize(("answer", "expected"), [
    (7_136_768, 7_136_768), (7136768.4, 7136768), ("7_136_768", 7_136_768), ("7,136,768", 7_136_768),
    ("7.14MB", 7_140_000), ("7.14 mb", 7_140_000), ("2kB", 2000), ("3k", 3000), ("1.5GB", 1_500_000_000),
    ("512B", 512), (float("inf"), None), (float("nan"), None), ("banana", None), ("", None), (True, None),
    (-1, None), ([1], None),
    # the spellings students use: binary units are binary, a lone letter is decimal like Docker's MB
    ("7.14 MiB", round(7.14 * 2**20)), ("7.14MiB", round(7.14 * 2**20)), ("7.14 MB", 7_140_000),
    ("7.1M", 7_100_000), ("7140 kB", 7_140_000), (" 7140kb ", 7_140_000), (np.int64(7_136_768), 7_136_768),
    # a comma is a decimal point only where it cannot be a thousands separator; "7,140" could be either
    ("7,14MB", 7_140_000), ("7,140.5", 7140), ("7,140", None), ("7,14,0", None), ("1,", None),
    # odd input: never an exception
    ("²", None), ("1.5", 2), ("-7MB", None), ("   ", None), (None, None), ("1e6", None), ("9" * 400, None),
    (10**400, None), ({}, None),
], ids=lambda value: repr(value)[:20])
def test_as_bytes(answer: object, expected: int | None) -> None:
    assert as_bytes(answer) == expected


# ------------------------------------------------------------------------ size after a delete


@pytest.mark.parametrize("placeholder", [..., None])
def test_size_after_delete_placeholder(client: Client, placeholder: object) -> None:
    assert_unanswered(check_image_size_after_delete(client, "demo", placeholder))
    # unanswered even before the image exists: a notebook full of placeholders must run
    assert_unanswered(check_image_size_after_delete(client, "not-built-yet", placeholder))


def test_size_after_delete_accepts_the_real_size(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    assert_right(check_image_size_after_delete(client, "demo", demo.size))
    assert_right(check_image_size_after_delete(client, "demo", human_size(demo.size)))
    assert_right(check_image_size_after_delete(client, "demo", round(demo.size * 1.005)))  # rounded as images does
    assert_wrong(check_image_size_after_delete(client, "demo", round(demo.size * 0.985)), "Add up every layer")


def test_size_after_delete_refuses_a_round_guess_at_the_notebooks_image(client: Client, busybox_store: Store) -> None:
    """Notebook 03's layers-demo (busybox plus 5,007,872 bytes, 7.14MB): "7MB" is a guess, 1.9% off, not a
    prediction. The examples the messages give are nowhere near it."""
    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("COPY greeting.txt big.bin /app/") as ch:
        ch.add_file("/app/greeting.txt", "hello\n")
        ch.add_file("/app/big.bin", b"b" * 5_000_000)
    with b.layer("RUN echo 'hello, layers' > /app/greeting.txt") as ch:
        ch.add_file("/app/greeting.txt", "hello, layers\n")
    with b.layer("RUN rm /app/big.bin") as ch:
        ch.remove("/app/big.bin")
    size = b.commit("layers-demo").size
    assert human_size(size) == "7.14MB", "the set-up's busybox is 2.13MB"
    assert_right(check_image_size_after_delete(client, "layers-demo", size))
    assert_right(check_image_size_after_delete(client, "layers-demo", "7.14MB"))
    for guess in (7_000_000, "7MB", "7.0MB"):
        assert_wrong(check_image_size_after_delete(client, "layers-demo", guess), "Add up every layer")
    shown = [check_image_size_after_delete(client, "layers-demo", odd) for odd in (..., "lots", 3)]
    for check in shown:
        text = f"{check.message} {check.hint}"
        assert "12.3MB" in text and not re.search(r"\b7[._,]?[0-9]*\s*MB|7_[0-9]{3}_[0-9]{3}", text), text


def test_size_after_delete_explains_the_freed_bytes_mistake(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    naive = demo.size - BIG  # "the delete gave the bytes back"
    assert_wrong(check_image_size_after_delete(client, "demo", naive), "whiteout")
    assert_wrong(check_image_size_after_delete(client, "demo", demo.size * 3), "Add up every layer")
    assert_wrong(check_image_size_after_delete(client, "demo", 2.5), "bytes")
    assert_wrong(check_image_size_after_delete(client, "demo", "lots"), "bytes")


def test_size_after_delete_follows_the_store_not_a_constant(client: Client, busybox_store: Store) -> None:
    build_demo(busybox_store)
    before = get_image(busybox_store, "demo").size
    b = ImageBuilder(busybox_store, "demo")  # a bigger image under the same name
    with b.layer("COPY more.bin /") as ch:
        ch.add_file("/more.bin", b"m" * 1_000_000)
    after = b.commit("demo").size
    assert_wrong(check_image_size_after_delete(client, "demo", before))
    assert_right(check_image_size_after_delete(client, "demo", after))


def test_size_after_delete_missing_or_unsuitable_image(client: Client, busybox_store: Store) -> None:
    assert_wrong(check_image_size_after_delete(client, "not-built-yet", 1_000_000), "build")
    assert_wrong(check_image_size_after_delete(client, "Not A Valid Name!", 1_000_000), "build")
    build_app(busybox_store, "app-a")
    assert_wrong(check_image_size_after_delete(client, "app-a", 1_000_000), "removes a file")


# ------------------------------------------------------------------------------------ no waste


def test_no_waste_is_unanswered_until_the_image_exists(client: Client, busybox_store: Store) -> None:
    build_demo(busybox_store)
    assert_unanswered(check_no_wasted_bytes(client, "demo:fixed", like="demo"))


def test_no_waste_accepts_a_clean_rebuild(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    fixed = build_fixed(busybox_store, "demo:fixed")
    check = check_no_wasted_bytes(client, "demo:fixed", like="demo")
    assert_right(check)
    assert f"{demo.size - fixed.size:,} bytes smaller" in check.message


def test_no_waste_rejects_the_same_image_retagged(client: Client, busybox_store: Store) -> None:
    build_demo(busybox_store)
    build_demo(busybox_store, tag="demo:fixed")
    check = check_no_wasted_bytes(client, "demo:fixed", like="demo")
    assert_wrong(check, "inside one layer")
    assert f"{BIG + 6:,} bytes" in check.message


def test_no_waste_compares_content_not_just_sizes(client: Client, busybox_store: Store) -> None:
    build_demo(busybox_store)
    build_fixed(busybox_store, "demo:fixed", text="HELLO, LAYERS\n")  # same size, other bytes
    check = check_no_wasted_bytes(client, "demo:fixed", like="demo")
    assert_wrong(check, "final content")
    assert "different /app/greeting.txt" in check.message
    build_app(busybox_store, "app-a")
    check = check_no_wasted_bytes(client, "app-a", like="demo")
    assert "missing /app/greeting.txt" in check.message and "extra /app/main.py" in check.message


def test_no_waste_without_the_reference_image(client: Client, busybox_store: Store) -> None:
    build_fixed(busybox_store, "demo:fixed")
    assert_wrong(check_no_wasted_bytes(client, "demo:fixed", like="demo"), "build")


# -------------------------------------------------------------------------------- stored bytes


NAMES = ["busybox", "app-a", "app-b", "app-c"]


def stored_and_summed(store: Store) -> tuple[int, int]:
    """Bytes of distinct layer blobs on disk, and the sum of the images' sizes (measured independently)."""
    images = [get_image(store, n) for n in NAMES]
    digests = {d.digest for image in images for d in image.layers}
    return sum(store.blob_path(d).stat().st_size for d in digests), sum(i.size for i in images)


@pytest.fixture
def apps(busybox_store: Store) -> tuple[int, int]:
    for name in NAMES[1:]:
        build_app(busybox_store, name)
    return stored_and_summed(busybox_store)


def test_stored_bytes_example_is_not_the_answer(client: Client, apps: tuple[int, int]) -> None:
    """Notebook 03's answer is busybox plus three 2,560-byte layers (2_136_576 with the set-up's busybox): the
    example a hint gives must be nowhere near it."""
    stored, _summed = apps
    check = check_stored_bytes(client, NAMES, "lots")
    assert_wrong(check, "12_345_678")
    assert f"{stored:_}" not in check.hint and "2_136_576" not in check.hint


@pytest.mark.parametrize("placeholder", [..., None])
def test_stored_bytes_placeholder(client: Client, placeholder: object) -> None:
    assert_unanswered(check_stored_bytes(client, NAMES, placeholder))  # the apps need not exist yet


def test_stored_bytes_accepts_each_layer_counted_once(client: Client, apps: tuple[int, int]) -> None:
    stored, _summed = apps
    assert_right(check_stored_bytes(client, NAMES, stored))
    assert_right(check_stored_bytes(client, NAMES, human_size(stored)))


def test_stored_bytes_rejects_counting_the_base_per_image(client: Client, apps: tuple[int, int]) -> None:
    stored, summed = apps
    assert_wrong(check_stored_bytes(client, NAMES, summed), "once")
    assert_wrong(check_stored_bytes(client, NAMES, stored + 512), "distinct layer digests")
    assert_wrong(check_stored_bytes(client, NAMES, 7), "bytes")
    assert_wrong(check_stored_bytes(client, NAMES, "plenty"), "bytes")


def test_stored_bytes_with_a_missing_image(client: Client) -> None:
    assert_wrong(check_stored_bytes(client, NAMES, 123_456), "build")


# ------------------------------------------------------------------------------------ size spellings


@pytest.mark.parametrize(("text", "expected"), [
    ("512m", 512 << 20), ("1g", 1 << 30), ("100k", 100 << 10), ("42", 42), ("512mb", 512 << 20),
    ("512MiB", 512 << 20), (" 64M ", 64 << 20), ("1.5g", 3 << 29),
])
def test_parse_size_still_reads_memory_limits_as_docker_does(text: str, expected: int) -> None:
    """``-m 512m`` is binary (Docker's RAMInBytes); the decimal reading is only for sizes a student writes."""
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("7,140", "write 7.140 or 7140"), ("-1", "never negative"), ("lots", "a number"), ("9" * 30, "more bytes"),
])
def test_parse_size_refuses_in_one_sentence(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        parse_size(text, decimal=True)
    assert "\n" not in str(caught.value)


def spellings(size: int) -> list[str]:
    """How students write a size: decimal and binary units, with or without a space, a decimal comma."""
    return [f"{size / 1e6:.2f} MB", f"{size / 1e6:.2f}MB", f"{size / 1e6:.2f}M", f"{size / 1e3:.0f} kB",
            f"{size / 2**20:.2f} MiB", f"{size / 2**20:.2f}MiB", f"{size / 1e6:.2f}MB".replace(".", ",")]


def test_size_after_delete_accepts_common_spellings(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    for spelling in spellings(demo.size):
        assert_right(check_image_size_after_delete(client, "demo", spelling))
    assert_right(check_image_size_after_delete(client, "demo", np.int64(demo.size)))  # computed with numpy


def test_size_after_delete_names_a_mib_for_mb_mix_up(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    mixed_up = f"{demo.size / 1e6:.2f} MiB"  # the MB number with a MiB unit: ~5% too big
    assert as_bytes(mixed_up) is not None
    check = check_image_size_after_delete(client, "demo", mixed_up)
    assert_wrong(check, "decimal units")
    assert "1,048,576 bytes" in check.message


def test_size_after_delete_refuses_an_ambiguous_comma(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    ambiguous = f"{demo.size // 1000:,} kB"  # "2,429 kB": 2429 kB, or 2.429 kB?
    assert "," in ambiguous
    check = check_image_size_after_delete(client, "demo", ambiguous)
    assert_wrong(check, "bytes")
    assert "comma" in check.message and "\n" not in check.message


def test_stored_bytes_accepts_a_binary_unit(client: Client, apps: tuple[int, int]) -> None:
    stored, _summed = apps
    assert_right(check_stored_bytes(client, NAMES, f"{stored / 2**20:.4f} MiB"))
    assert_wrong(check_stored_bytes(client, NAMES, f"{stored / 1e6:.3g} MiB"), "decimal units")


# ------------------------------------------------------------- odd answers: one line, never a traceback


ODD = ["", "   ", "²", "1.5", "-5", "7,140", "9" * 5000, "\n", 1.5, -5, 0, float("nan"), [1], [], {}, {"²"},
       ["²", "1"], ("²", 1), (1, 2, 3), True, object(), b"42", Path("/")]


def assert_one_line(check: Check) -> None:
    """Wrong or unanswered, the student sees a message of one line, and a hint when it is wrong."""
    assert isinstance(check, Check) and not check.ok
    assert "\n" not in check.message and len(check.message) < 200, check.message
    assert not check.answered or check.hint, check


def every_check(client: Client, steps: BuildResult, busybox_store: Store) -> list[Callable[[object], Check]]:
    """Each check that grades a typed answer, ready to take one (the images and results they need exist)."""
    vm = SimpleNamespace(measured=True, unavailable="", median_phase=lambda kind, phase: 1.0,
                         median=lambda kind: 3.0)
    per_instance = SimpleNamespace(per_instance=SimpleNamespace(cost=1_000_000))
    density = SimpleNamespace(containers_per_vm=40.0, unavailable={}, container=per_instance, vm=per_instance)
    return [lambda a: check_image_size_after_delete(client, "demo", a),
            lambda a: check_stored_bytes(client, ["busybox", "demo"], a),
            lambda a: check_cache_misses(steps, a),
            lambda a: check_history_and_layers(client, "demo", a),
            lambda a: check_slowest_vm_phase(vm, a),  # type: ignore[arg-type]
            lambda a: check_containers_per_vm(density, a),  # type: ignore[arg-type]
            lambda a: check_cpu_counts(busybox_store, a),
            lambda a: check_full_names({"busybox": a}),
            lambda a: check_full_names(a),
            lambda a: check_push_prediction(A_PUSH, a),
            lambda a: check_pulled_by_digest(client, "demo", client, a)]


@pytest.fixture
def greeting_builds(busybox_store: Store, tmp_path: Path) -> BuildResult:
    """A rebuild after greeting.txt changed: step 2 (WORKDIR) cached, steps 3 and 4 missed."""
    ctx = tmp_path / "greeting"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nWORKDIR /app\nCOPY greeting.txt ./\nCMD ["cat", "greeting.txt"]\n')
    (ctx / "greeting.txt").write_text("hello\n")
    build(busybox_store, ctx)
    (ctx / "greeting.txt").write_text("hello, edited\n")
    return build(busybox_store, ctx)


@pytest.mark.parametrize("answer", ODD, ids=lambda value: repr(value)[:20])
def test_odd_answers_get_one_line_and_no_traceback(client: Client, busybox_store: Store,
                                                   greeting_builds: BuildResult, answer: object) -> None:
    build_demo(busybox_store)
    for check in every_check(client, greeting_builds, busybox_store):
        assert_one_line(check(answer))


# ------------------------------------------------------------------------------- cache misses, history


@pytest.mark.parametrize(("answer", "words"), [
    ("²", "'²' is not a step number"), (["²", 3], "'²' is not a step number"), ("", "empty string"),
    (-1, "numbered from 1"), ("1.5", "'1.5' is not a step number"), ({99}, "no step 99: it has 4 steps"),
])
def test_cache_misses_odd_answers(greeting_builds: BuildResult, answer: object, words: str) -> None:
    check = check_cache_misses(greeting_builds, answer)
    assert_wrong(check)
    assert words in check.message


def test_cache_misses_reads_a_set_written_as_a_string(greeting_builds: BuildResult) -> None:
    for answer in ({3, 4}, "{3, 4}", "[3,4]", ("3", "4"), [np.int64(3), 4]):
        assert_right(check_cache_misses(greeting_builds, answer))


def test_cache_misses_empty_prediction_does_not_list_the_steps(greeting_builds: BuildResult) -> None:
    check = check_cache_misses(greeting_builds, set())
    assert_wrong(check, "first step that depends")
    assert "2 steps missed" in check.message and "3" not in check.message and "4" not in check.message


@pytest.mark.parametrize("cmd", ["CMD CS107", "CMD [CS107]"])
def test_default_greeting_names_a_cmd_in_shell_form(client: Client, tmp_path: Path, cmd: str) -> None:
    """`CMD CS107` (or a list that is not JSON) is shell form: echo would print "Hello /bin/sh -c CS107"."""
    (tmp_path / "Dockerfile").write_text(f'FROM busybox\nENTRYPOINT ["/bin/echo", "Hello"]\n{cmd}\n')
    build(client.store, tmp_path, tags=["hello_world_cmd:cs107"])
    assert client.images.get("hello_world_cmd:cs107").core.settings["Cmd"][:2] == ["/bin/sh", "-c"]
    check = check_default_greeting(client, "hello_world_cmd:cs107", "Hello CS107")
    assert_wrong(check, "JSON list", 'CMD ["world"]')
    assert "CMD is in shell form" in check.message and "/bin/sh" in check.message


def test_history_and_layers_odd_pairs(client: Client, busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    truth = (len(demo.history()), len(demo.layers))
    assert_right(check_history_and_layers(client, "demo", tuple(str(n) for n in truth)))
    assert_right(check_history_and_layers(client, "demo", [np.int64(truth[0]), truth[1]]))
    for odd in [("²", 1), (1.5, 2), "4, 2", (1,)]:
        check = check_history_and_layers(client, "demo", odd)
        assert_wrong(check, "two whole numbers")
        assert "not a pair of whole numbers" in check.message


# --------------------------------------------------------------------------------- build cache (04)


TOOL = '#!/bin/sh\necho "$0 $*" >> /installed\n'  # a stand-in for pip, pip3 and python3 -m pip
INSTALL_OPTIONS = ["--no-index", "-r", "requirements.txt"]


@pytest.fixture
def app_context(tmp_path: Path) -> Path:
    """An app's build context on busybox: the stand-in tools, requirements.txt and app.py."""
    ctx = tmp_path / "app"
    (ctx / "tools").mkdir(parents=True)
    for name in ("pip", "pip3", "python3"):
        (ctx / "tools" / name).write_text(TOOL)
        (ctx / "tools" / name).chmod(0o755)
    (ctx / "requirements.txt").write_text("flask==3.0.3\n")
    (ctx / "app.py").write_text("print('hello')\n")
    return ctx


def ordered(install: str, app_first: bool = False) -> str:
    """A Dockerfile that copies what the install needs, runs *install*, then copies the app (or the app first)."""
    copy_app = "COPY . .\n"
    return ("FROM busybox\nWORKDIR /app\nCOPY tools/ /usr/local/bin/\n" + (copy_app if app_first else "")
            + f"COPY requirements.txt ./\n{install}\n" + ("" if app_first else copy_app))


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps run in native containers as root")


@needs_root
@pytest.mark.parametrize("install", [
    "RUN pip install " + " ".join(INSTALL_OPTIONS),
    "RUN pip3 install " + " ".join(INSTALL_OPTIONS),
    "RUN python3 -m pip install " + " ".join(INSTALL_OPTIONS),
    'RUN ["pip", "install", ' + ", ".join(f'"{o}"' for o in INSTALL_OPTIONS) + "]",
    'RUN ["pip3","install",' + ",".join(f'"{o}"' for o in INSTALL_OPTIONS) + "]",
])
def test_install_stays_cached_accepts_every_way_to_call_pip(client: Client, app_context: Path, install: str) -> None:
    images_before = {i.id for i in client.images.list(all=True)}
    check = check_install_stays_cached(client, app_context, ordered(install))
    assert_right(check)
    assert "came from the cache" in check.message and "app.py changed" in check.message
    assert {i.id for i in client.images.list(all=True)} == images_before  # neither build is left as an image


@needs_root
def test_install_stays_cached_keeps_the_students_own_image_of_the_same_build(client: Client, app_context: Path,
                                                                             tmp_path: Path) -> None:
    """Builds are reproducible: the check's first build may be the very image the student built and tagged."""
    dockerfile = ordered("RUN pip3 install -r requirements.txt")
    mine = tmp_path / "mine"
    shutil.copytree(app_context, mine)
    (mine / "Dockerfile").write_text(dockerfile)
    own = build(client.store, mine, tags=["mine"]).image.id
    assert_right(check_install_stays_cached(client, app_context, dockerfile))
    assert client.images.get("mine").id == own  # still there, still tagged


@needs_root
def test_install_stays_cached_rejects_the_app_copied_first(client: Client, app_context: Path) -> None:
    check = check_install_stays_cached(client, app_context, ordered("RUN pip3 install -r requirements.txt", True))
    assert_wrong(check, "before the install step")
    assert "ran again" in check.message


@needs_root
def test_install_stays_cached_without_an_install_step(client: Client, app_context: Path) -> None:
    assert_wrong(check_install_stays_cached(client, app_context, ordered("RUN pip3 list")), "install step")


@pytest.mark.parametrize(("dockerfile", "error", "hint"), [
    ("FROM busybox\nFOO bar\n", "unknown instruction: FOO", "check its spelling"),
    ("FROM\n", "FROM requires", "FROM python:3.11-slim"),
    ("FROM nosuchimage:1\nRUN true\n", "nosuchimage", "base image this notebook put in the store"),
    ("FROM busybox\nCOPY nothere.txt /\n", "COPY failed", "must exist in the build context"),
    ("FROM busybox\nCOPY\n", "COPY requires", "Fix line 2"),
])
def test_install_stays_cached_hint_fits_the_build_error(client: Client, app_context: Path, dockerfile: str,
                                                         error: str, hint: str) -> None:
    check = check_install_stays_cached(client, app_context, dockerfile)
    assert_wrong(check, hint)
    assert check.message.startswith("your Dockerfile does not build: Dockerfile:") and error in check.message
    if "COPY" not in dockerfile:
        assert "build context" not in check.hint  # the old hint blamed COPY sources for every failure


@pytest.mark.parametrize("dockerfile", [42, "", "hello", ["FROM busybox"]])
def test_install_stays_cached_not_a_dockerfile(client: Client, app_context: Path, dockerfile: object) -> None:
    assert_wrong(check_install_stays_cached(client, app_context, dockerfile), "FROM python:3.11-slim")


# ----------------------------------------------------------------------------------- isolation (05)


@pytest.fixture
def running(busybox_store: Store) -> Iterator[Client]:
    """A client whose containers are all removed after the test, whatever happened."""
    client = Client(busybox_store.home)
    yield client
    for c in client.containers.list(all=True):
        c.remove(force=True)


def start_web(client: Client, name: str = "web", **options: object) -> Container:
    """A busybox container whose shell stays PID 1 with a child (``sleep``), once the child has started."""
    web = client.containers.run("busybox", ["sh", "-c", "sleep 300; true"], detach=True, name=name, **options)
    wait_for(lambda: len(processes(web._c.reload())) >= 2, "the container's shell to start its child")
    return web


@needs_root
@pytest.mark.parametrize("backend", ["native", "rootless"])
def test_host_pid_knows_the_children_with_every_back_end(running: Client, monkeypatch: pytest.MonkeyPatch,
                                                         backend: str) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
    web = start_web(running)
    assert web.attrs["RuntimeBackend"] == backend
    pid = web.attrs["State"]["Pid"]
    assert_right(check_host_pid(running, "web", pid))
    child = next(p for p in processes(web._c.reload()) if p != pid)  # what `pycontainers top web` lists
    check = check_host_pid(running, "web", child)
    assert_wrong(check, "their PPID")
    assert check.message == f"{child} is a process of web, but not its PID 1."
    assert_wrong(check_host_pid(running, "web", os.getpid()), "top web")


@needs_root
def test_host_pid_under_proot_says_there_is_no_pid_namespace(running: Client,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    web = start_web(running)
    check = check_host_pid(running, "web", web.attrs["State"]["Pid"])
    assert_not_checkable(check)  # a right answer is not marked wrong: there is nothing to be right about
    assert "no PID namespace" in check.message


def test_namespace_exercises_without_their_container_under_proot_cannot_be_checked(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under proot (Binder) the cells that start "web" do nothing: the checks say so, without a red cross."""
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    for check in (check_host_pid(client, "web", 4242), check_own_namespaces(client, "web", {"mnt"})):
        assert_not_checkable(check)
        assert "there is no container 'web'" in check.message and "proot" in check.message


@needs_root
@pytest.mark.parametrize("answer", ["²", "", " ", "1.5", 1.5, [1], -5, 0, True, "9" * 5000, {"pid": 1}],
                         ids=lambda value: repr(value)[:20])
def test_host_pid_odd_answers(running: Client, answer: object) -> None:
    start_web(running)
    check = check_host_pid(running, "web", answer)
    assert_wrong(check, "whole number above 0")
    assert check.message.endswith("is not a PID.") and "\n" not in check.message


HOSTNET_OWN = {"mnt", "pid", "uts", "ipc", "cgroup"}  # --network host keeps the host's net (and user)


def assert_gives_nothing_away(check: Check, missing: set[str]) -> None:
    text = check.message + " " + check.hint
    for name in missing:
        assert not re.search(rf"\b{name}\b", text), f"{name!r} given away: {check}"


@needs_root
@pytest.mark.parametrize(("answer", "missing"), [
    (set(), HOSTNET_OWN), ("", HOSTNET_OWN), ("  ", HOSTNET_OWN), ([], HOSTNET_OWN),
    ({"mnt"}, HOSTNET_OWN - {"mnt"}), ("mnt, pid", {"uts", "ipc", "cgroup"}), (HOSTNET_OWN - {"cgroup"}, {"cgroup"}),
])
def test_own_namespaces_never_lists_the_missing_ones(running: Client, answer: object, missing: set[str]) -> None:
    start_web(running, "hostnet", network="host")
    assert set(views.own_namespaces(running.containers.get("hostnet").attrs["State"]["Pid"])) == HOSTNET_OWN
    check = check_own_namespaces(running, "hostnet", answer)
    assert_wrong(check, "readlink")
    assert_gives_nothing_away(check, missing)
    assert f"{len(missing)} namespace{'s' if len(missing) != 1 else ''}" in check.message


@needs_root
def test_own_namespaces_names_the_wrong_ones_only(running: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    start_web(running, "hostnet", network="host")
    assert_right(check_own_namespaces(running, "hostnet", "{'mnt', 'pid', 'uts', 'ipc', 'cgroup'}"))
    assert_right(check_own_namespaces(running, "hostnet", [" MNT ", "pid", "uts", "ipc", "cgroup"]))
    assert_wrong(check_own_namespaces(running, "hostnet", HOSTNET_OWN | {"net"}), "--network host")
    # a container with fewer namespaces of its own, so that an answer can be wrong both ways at once
    monkeypatch.setattr(views, "own_namespaces", lambda pid: ["mnt", "pid"])
    check = check_own_namespaces(running, "hostnet", {"mnt", "uts", "ipc"})
    assert check.message == "not quite: it shares ipc, uts with the host, and your answer misses 1 namespace it has " \
                            "of its own."
    assert_gives_nothing_away(check, {"pid"})


@pytest.mark.parametrize(("answer", "words"), [
    ({1}, "is not a set of namespace names"), (42, "is not a set of namespace names"),
    ("²", "'²' is not a namespace"), ({"mnt", "clock"}, "'clock' is not a namespace"),
])
def test_own_namespaces_odd_answers(client: Client, answer: object, words: str) -> None:
    check = check_own_namespaces(client, "hostnet", answer)  # refused before it looks for the container
    assert_wrong(check, "/proc/PID/ns")
    assert words in check.message


def test_cpu_counts_hint_names_what_nproc_counts(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontainers import compare, exercises

    check = check_cpu_counts(busybox_store, ...)
    assert_unanswered(check)
    pair = re.search(r"\((\d+), (\d+)\)", check.message)
    assert pair and pair.group(1) != pair.group(2), "the example must not suggest that both see as many"
    monkeypatch.setattr(compare, "container_unavailable", lambda: None)
    monkeypatch.setattr(compare, "vm_unavailable", lambda: None)
    monkeypatch.setattr(exercises, "cpu_counts", lambda store, image="busybox": (4, 1))  # as measured by nproc
    assert_right(check_cpu_counts(busybox_store, (4, 1)))
    check = check_cpu_counts(busybox_store, (2, 1))
    assert_wrong(check, "len(os.sched_getaffinity(0))", "nproc")
    assert "os.cpu_count()" not in check.hint


def test_own_namespaces_knows_the_time_namespace(client: Client) -> None:
    """Linux's eighth namespace type (5.6+) is a namespace: the answer is read, and looked for in the store."""
    check = check_own_namespaces(client, "hostnet", {"mnt", "time"})
    assert "not a namespace" not in check.message and "there is no container 'hostnet'" in check.message


@needs_root
def test_own_namespaces_counts_time_as_the_hosts(running: Client) -> None:
    start_web(running, "hostnet", network="host")
    assert "time" not in views.own_namespaces(running.containers.get("hostnet").attrs["State"]["Pid"])
    check = check_own_namespaces(running, "hostnet", HOSTNET_OWN | {"time"})
    assert_wrong(check, "/proc/self/ns/time")
    assert check.message.startswith("the time namespace is the host's")


def test_oom_killed_without_its_container_says_not_to_use_rm(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "native")  # where the exercise can be done: containers get a cgroup
    check = check_oom_killed(client, "ex-oom", "32m")
    assert_unanswered(check)
    assert "without --rm" in check.message and "removed when it stops" in check.message


@needs_root
@pytest.mark.parametrize("backend", ["native", "rootless"])
def test_stats_limit_without_m_is_the_machines_memory(running: Client, monkeypatch: pytest.MonkeyPatch,
                                                     backend: str) -> None:
    from pycontainers.stats import machine_memory
    from pycontainers.units import bytes_size

    monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
    assert_unanswered(check_stats_limit(running, "hostnet", ...))
    start_web(running, "hostnet", network="host")
    assert_unanswered(check_stats_limit(running, "hostnet", None))
    total = machine_memory()
    for right in (total, str(total), bytes_size(total), f" {bytes_size(total).lower()} ", human_size(total)):
        check = check_stats_limit(running, "hostnet", right)
        assert_right(check)
        assert "all of this machine's memory" in check.message
    decimal_for_binary = bytes_size(total).replace("iB", "B")  # '23.54GB' for '23.54GiB': 7% less
    assert_wrong(check_stats_limit(running, "hostnet", decimal_for_binary), "GiB")
    for nothing in ("unlimited", "none", 0, "0", "max"):
        assert_wrong(check_stats_limit(running, "hostnet", nothing), "stats --no-stream hostnet")
    check = check_stats_limit(running, "hostnet", "64m")  # a limit it was never given
    assert_wrong(check, "/proc/meminfo")
    assert check.message == "'64m' is not the LIMIT stats shows for hostnet."
    assert_wrong(check_stats_limit(running, "hostnet", "lots"), "with its unit")


@needs_root
def test_stats_limit_of_a_limited_container_is_its_limit(running: Client) -> None:
    """Read from the stats reading, not assumed: with -m, the limit is the cgroup's."""
    start_web(running, "capped", mem_limit="48m")
    assert_right(check_stats_limit(running, "capped", "48MiB"))
    assert "all of this machine's memory" not in check_stats_limit(running, "capped", 48 * 1024**2).message


def test_stats_limit_without_its_container(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")  # Binder: the cells that start hostnet do nothing
    for answer in (..., "1GiB"):
        check = check_stats_limit(client, "hostnet", answer)
        assert_not_checkable(check)
        assert "there is no container 'hostnet'" in check.message
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "native")
    assert_unanswered(check_stats_limit(client, "hostnet", ...))
    assert_wrong(check_stats_limit(client, "hostnet", "1GiB"), "Run the cells above")


# ------------------------------------------------------------------------------- sharing images (07)


def test_full_names_placeholders_then_answers() -> None:
    names = {"ubuntu": ..., "pavlos/simple-translate": ..., "127.0.0.1:5000/simple-translate:v2": ...}
    assert_unanswered(check_full_names(...))
    assert_unanswered(check_full_names(names))
    names["ubuntu"] = "docker.io/library/ubuntu:latest"
    check = check_full_names(names)
    assert_unanswered(check)  # right so far: the two others are still to do, and named
    assert "pavlos/simple-translate, 127.0.0.1:5000/simple-translate:v2" in check.message
    names["pavlos/simple-translate"] = " docker.io/pavlos/simple-translate:latest "
    names["127.0.0.1:5000/simple-translate:v2"] = "127.0.0.1:5000/simple-translate:v2"
    assert_right(check_full_names(names))
    names["ubuntu"] = "ubuntu:latest"  # a mistake is reported even while others are unanswered
    names["pavlos/simple-translate"] = ...
    assert_wrong(check_full_names(names), "docker.io")


@pytest.mark.parametrize(("short", "answer", "words", "hint"), [
    ("ubuntu", "ubuntu", "leaves out docker.io/ and library/ and :latest", "means latest"),
    ("ubuntu", "docker.io/ubuntu:latest", "leaves out library/.", "official image"),
    ("ubuntu", "library/ubuntu:latest", "leaves out docker.io/.", "on Docker Hub"),
    ("ubuntu", "docker.io/library/ubuntu", "leaves out :latest.", "means latest"),
    ("ubuntu", "docker.io/library/ubuntu:22.04", "another tag", "last ':'"),
    ("ubuntu", "Ubuntu", "must be lowercase", "registry/repository:tag"),
    ("pavlos/simple-translate", "docker.io/library/pavlos/simple-translate:latest", "under library/",
     "user or organisation"),
    ("127.0.0.1:5000/app:v2", "docker.io/library/app:v2", "on the registry docker.io", "':port'"),
    ("127.0.0.1:5000/app:v2", "127.0.0.1:5000/app", "another tag", "last ':'"),
    ("127.0.0.1:5000/app:v2", "127.0.0.1:5000/library/app:v2", "under library/", "official images"),
    ("127.0.0.1:5000/app:v2", "docker.io/127.0.0.1:5000/app:v2", "invalid path component", "registry/repository"),
    ("busybox", "docker.io/library/busybox@sha256:" + "a" * 64, "has a digest", "without @sha256"),
    ("busybox", 42, "is not a name", "as a string"),
])
def test_full_names_hint_fits_the_slip(short: str, answer: object, words: str, hint: str) -> None:
    check = check_full_names({short: answer})
    assert_wrong(check, hint)
    assert words in check.message and "\n" not in check.message


def test_full_names_refuses_a_changed_key() -> None:
    assert_wrong(check_full_names({"Not A Name!": "docker.io/library/busybox:latest"}), "Keep the keys")


PUSHED, THERE = "Pushed", "Layer already exists"
A_PUSH = "".join(json.dumps(e) + "\r\n" for e in [  # the JSON lines client.images.push returns
    {"status": "The push refers to repository [127.0.0.1:5000/app]"},
    *({"status": "Preparing", "id": i} for i in ("cccccccccccc", "bbbbbbbbbbbb", "aaaaaaaaaaaa")),
    {"status": PUSHED, "id": "cccccccccccc"}, {"status": THERE, "id": "bbbbbbbbbbbb"},
    {"status": "Mounted from library/app", "id": "aaaaaaaaaaaa"},
    {"status": "v2: digest: sha256:" + "d" * 64 + " size: 704"}])


def test_push_outcome_reads_every_shape_of_progress() -> None:
    events = [json.loads(line) for line in A_PUSH.splitlines()]
    printed = [line for line in map(progress_line, events) if line]
    truth = {"cccccccccccc": PUSHED, "bbbbbbbbbbbb": THERE, "aaaaaaaaaaaa": "Mounted from library/app"}
    for progress in (A_PUSH, A_PUSH.encode(), A_PUSH.splitlines(), events, iter(events), printed, "\n".join(printed)):
        assert push_outcome(progress) == truth
    for nothing in ("", [], "hello", [{"status": "Preparing", "id": "x"}], 42, {"id": "x"}, None):
        assert push_outcome(nothing) is None
    assert_right(check_push_prediction(A_PUSH, (1, 2)))  # a layer mounted from another repository was there


@pytest.mark.parametrize("placeholder", [..., None])
def test_push_prediction_placeholder(placeholder: object) -> None:
    assert_unanswered(check_push_prediction(A_PUSH, placeholder))
    assert_unanswered(check_push_prediction(None, placeholder))  # before the push cell ran


def test_push_prediction_without_a_push() -> None:
    for progress in (..., None, "", "not a push"):
        assert_wrong(check_push_prediction(progress, (1, 2)), "Run the cell that pushes")


needs_registry = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                    reason="Docker's registry program (docker-registry) is not installed")


def build_release(store: Store, tag: str, model: bytes, code: str) -> Image:
    """Notebook 07's releases, small: busybox, a model's layer, then the code's."""
    b = ImageBuilder(store, "busybox")
    with b.layer("COPY model/ /app/model/") as ch:
        ch.add_file("/app/model/weights.bin", model)
    with b.layer("COPY translate.sh /app/") as ch:
        ch.add_file("/app/translate.sh", code)
    b.set(Cmd=["sh", "/app/translate.sh"])
    return b.commit(tag)


@pytest.fixture
def releases(client: Client, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A registry of the test's own with v1 and v2 pushed (v2: new code); v3 (a new model under v2's code) built
    and named for the registry, but not pushed."""
    with LocalRegistry(tmp_path / "registry") as reg:
        repo = f"{reg.address}/translate"
        images = {"v1": build_release(client.store, f"{repo}:v1", b"model 1\n" * 4096, "echo hello\n"),
                  "v2": build_release(client.store, f"{repo}:v2", b"model 1\n" * 4096, "echo hello, hola\n"),
                  "v3": build_release(client.store, f"{repo}:v3", b"model 2\n" * 4096, "echo hello, hola\n")}
        progress = {v: client.images.push(repo, v) for v in ("v1", "v2")}
        yield SimpleNamespace(registry=reg, repo=repo, images=images, progress=progress)


def pushed_digest(progress: str) -> str:
    """The manifest's digest from the push's last line ("v2: digest: sha256:... size: 704")."""
    return json.loads(progress.splitlines()[-1])["status"].split()[2]


@needs_registry
def test_push_prediction_against_real_pushes(client: Client, releases: SimpleNamespace) -> None:
    assert_right(check_push_prediction(releases.progress["v1"], (3, 0)))  # an empty registry: everything travels
    assert_right(check_push_prediction(releases.progress["v2"], ("1", "2")))
    events = list(client.images.push(releases.repo, "v3", stream=True, decode=True))
    assert push_outcome(events) == {releases.images["v3"].layers[0].digest[7:19]: THERE,
                                    releases.images["v3"].layers[1].digest[7:19]: PUSHED,
                                    releases.images["v3"].layers[2].digest[7:19]: THERE}
    check = check_push_prediction(events, (1, 2))
    assert_right(check)
    assert "1 layer uploaded, 2 layers already there" in check.message
    # the build cache's reasoning (everything above a change is new) is the tell-tale slip
    assert_wrong(check_push_prediction(events, (2, 1)), "wherever it sits")
    assert_wrong(check_push_prediction(events, (0, 3)), "new digest")
    check = check_push_prediction(events, (1, 1))
    assert_wrong(check, "Count every layer")
    assert "has 3 layers" in check.message


@needs_registry
def test_push_prediction_after_a_second_push(client: Client, releases: SimpleNamespace) -> None:
    again = client.images.push(releases.repo, "v2")
    outcome = push_outcome(again)
    assert outcome is not None and len(outcome) == 3 and set(outcome.values()) == {THERE}
    check = check_push_prediction(again, (1, 2))
    assert_wrong(check, "run the push cell once")
    assert "pushed before" in check.message
    assert_right(check_push_prediction(again, (0, 3)))  # a prediction of the second push itself is right


@needs_registry
def test_pulled_by_digest(client: Client, releases: SimpleNamespace, tmp_path: Path) -> None:
    production = Client(tmp_path / "production")
    repo, v2 = releases.repo, releases.images["v2"]
    digest = pushed_digest(releases.progress["v2"])
    assert digest == v2.manifest_digest != v2.id

    def check(reference: object) -> Check:
        return check_pulled_by_digest(client, f"{repo}:v2", production, reference)

    assert_unanswered(check(...))
    assert_wrong(check(f"{repo}:v2"), "digest of the push's last line")
    assert "names a tag" in check(f"{repo}:v2").message
    wrong = check(f"{repo}@{v2.id}")
    assert_wrong(wrong, "digest of its manifest")
    assert "image ID" in wrong.message
    wrong = check(f"{repo}@{pushed_digest(releases.progress['v1'])}")
    assert_wrong(wrong, "push of v2")
    assert f"tagged {repo}:v1" in wrong.message
    assert "names no image" in check(f"{repo}@sha256:{'0' * 64}").message
    assert_wrong(check(f"{releases.registry.address}/other@{digest}"), "Keep the registry and repository")
    assert_wrong(check(f"{repo}@sha256:ABC"), "64 hex digits")
    before = check(f"{repo}@{digest}")
    assert_wrong(before, "Pull it")
    assert "does not have that image yet" in before.message
    pulled = production.images.pull(f"{repo}@{digest}")
    assert pulled.id == v2.id and pulled.tags == []  # pulled by digest: no tag, the same image
    assert_right(check(f" {repo}@{digest} "))


def test_pulled_by_digest_without_the_image_on_the_build_server(client: Client, tmp_path: Path) -> None:
    production = Client(tmp_path / "production")
    assert_wrong(check_pulled_by_digest(client, "127.0.0.1:5000/translate:v2", production,
                                        f"127.0.0.1:5000/translate@sha256:{'a' * 64}"), "build and push")
