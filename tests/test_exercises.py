"""Self-checking exercises: right answers pass, wrong ones get a hint, placeholders never raise."""

from __future__ import annotations

import pytest
from demo_images import BIG, build_app, build_demo

from pycontainers.api import Client
from pycontainers.exercises import (
    Check,
    as_bytes,
    check_image_size_after_delete,
    check_no_wasted_bytes,
    check_stored_bytes,
)
from pycontainers.image import Image, ImageBuilder, get_image
from pycontainers.store import Store
from pycontainers.units import human_size


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
])
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
    assert_right(check_image_size_after_delete(client, "demo", round(demo.size * 1.01)))  # a prediction


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
