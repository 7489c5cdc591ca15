"""The notebook views: HTML tables, the layer graph, waste and efficiency, the layer explorer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from demo_images import BIG, build_app, build_demo

from pycontainers.api import Client
from pycontainers.image import ImageBuilder, get_image
from pycontainers.store import Store
from pycontainers.tables import Table
from pycontainers.units import human_size
from pycontainers.views import (
    Waste,
    efficiency,
    image_html,
    images_html,
    layer_changes_table,
    layer_explorer,
    layer_graph,
    layer_sharing,
    layer_sizes_table,
    layer_steps,
    short_digest,
    table_html,
    waste,
)

# ------------------------------------------------------------------------------------------- tables


def test_table_html_escapes_cells_headers_and_caption() -> None:
    table = Table(["Repository", "Size"], [{"Repository": "<script>alert('x')</script>", "Size": "1B"},
                                           {"Repository": "a&b", "Size": "2kB"}],
                  headers={"Size": "<SIZE>"})
    out = table_html(table, caption="<i>images</i>")
    assert "<script>" not in out and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert "a&amp;b" in out and "&lt;SIZE&gt;" in out and "&lt;i&gt;images&lt;/i&gt;" in out
    assert out.count("<tr>") == 3  # header + 2 rows
    assert "REPOSITORY" in out


def test_table_html_picks_columns_and_cuts_long_tables() -> None:
    table = Table(["Repository", "CreatedSince", "Size"],
                  [{"Repository": f"r{i}", "CreatedSince": "56 years ago", "Size": "1B"} for i in range(5)])
    out = table_html(table, columns=["Repository", "Size"], max_rows=2)
    assert "56 years ago" not in out and "CREATED" not in out
    assert "r1" in out and "r2" not in out
    assert "3 more rows" in out


def test_images_html_shows_the_cli_rows(busybox_store: Store) -> None:
    busybox = get_image(busybox_store, "busybox")
    out = images_html([busybox])
    for text in ("REPOSITORY", "busybox", "latest", busybox.short_id, human_size(busybox.size)):
        assert text in out


def test_image_html_lists_tags_layers_and_history(busybox_store: Store) -> None:
    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("RUN echo '<b>bold</b>' > /x && true") as ch:
        ch.add_file("/x", "<b>bold</b>\n")
    image = b.commit("escaped:1")
    out = image_html(image)
    assert "escaped:1" in out and image.short_id in out and human_size(image.size) in out
    for layer in image.layers:
        assert short_digest(layer.digest) in out and human_size(layer.size) in out
    assert "&lt;b&gt;bold&lt;/b&gt;" in out and "&amp;&amp; true" in out and "<b>bold</b>" not in out
    # the API object renders the same way (that is what api.Image._repr_html_ calls)
    api_image = Client(busybox_store.home).images.get("escaped:1")
    assert api_image._repr_html_() == out
    assert "escaped" in Client(busybox_store.home).images._repr_html_()


def test_layer_steps_match_layers_by_position(busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    steps = layer_steps(demo)
    assert len(steps) == 4
    assert steps[1:] == ["COPY greeting.txt big.bin /app/", "RUN echo 'hello, layers' > /app/greeting.txt",
                         "RUN rm /app/big.bin"]


# ------------------------------------------------------------------------------- waste and efficiency


def test_layer_sizes_table_counts_changes_and_waste(busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    rows = layer_sizes_table(demo, human=False).rows
    assert [r["Layer"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["Digest"] for r in rows] == [short_digest(d.digest) for d in demo.layers]
    assert [int(r["Size"]) for r in rows] == [d.size for d in demo.layers]
    assert [(r["Added"], r["Modified"], r["Deleted"]) for r in rows[1:]] == [("3", "0", "0"), ("0", "1", "0"),
                                                                             ("0", "0", "1")]
    # layer 1's big file (deleted) and first greeting (rewritten) are its wasted bytes
    assert [int(r["Wasted"]) for r in rows] == [0, BIG + 6, 0, 0]
    assert layer_sizes_table(demo).rows[1]["Wasted"] == human_size(BIG + 6)
    assert rows[3]["CreatedBy"] == "RUN rm /app/big.bin"


def test_efficiency_of_a_known_wasteful_image(store: Store) -> None:
    b = ImageBuilder(store, "scratch")
    with b.layer("add") as ch:
        ch.add_file("/a.bin", b"a" * 3000)
        ch.add_file("/keep.txt", b"k" * 1000)
    with b.layer("remove a.bin") as ch:
        ch.remove("/a.bin")
    image = b.commit("waste:1")
    assert waste(image) == Waste(content=4000, wasted=3000)
    assert efficiency(image) == pytest.approx(0.25)


def test_efficiency_counts_overwritten_files(store: Store) -> None:
    b = ImageBuilder(store, "scratch")
    with b.layer("add") as ch:
        ch.add_file("/f", b"1" * 1000)
    with b.layer("overwrite") as ch:
        ch.add_file("/f", b"2" * 500)
    image = b.commit("overwrite:1")
    assert waste(image) == Waste(content=1500, wasted=1000)
    assert efficiency(image) == pytest.approx(1 / 3)


def test_efficiency_is_one_without_waste(busybox_store: Store, store: Store) -> None:
    assert efficiency(get_image(busybox_store, "busybox")) == 1.0
    empty = ImageBuilder(store, "scratch").commit("empty:1")
    assert waste(empty) == Waste(0, 0) and efficiency(empty) == 1.0


def test_layer_changes_table_shows_where_hidden_bytes_stay(busybox_store: Store) -> None:
    demo = build_demo(busybox_store)
    added = layer_changes_table(demo, 1).rows
    assert {(r["Change"], r["Path"], r["Size"]) for r in added} == {
        ("added", "/app", ""), ("added", "/app/big.bin", human_size(BIG)), ("added", "/app/greeting.txt", "6B")}
    (modified,) = layer_changes_table(demo, 2).rows
    assert (modified["Change"], modified["Size"]) == ("modified", "14B")
    assert modified["Note"] == "old copy 6B still stored in layer 1"
    (deleted,) = layer_changes_table(demo, 3).rows
    assert (deleted["Change"], deleted["Path"], deleted["Kind"]) == ("deleted", "/app/big.bin", "file")
    assert deleted["Size"] == human_size(BIG) and deleted["Note"] == f"its {human_size(BIG)} still stored in layer 1"


# ------------------------------------------------------------------------------------------ sharing


def test_layer_graph_draws_a_shared_layer_once(busybox_store: Store) -> None:
    busybox = get_image(busybox_store, "busybox")
    a, b = build_app(busybox_store, "app-a"), build_app(busybox_store, "app-b")
    graph = layer_graph([busybox, a, b], title="shared <base>")
    source = graph.source
    base = short_digest(busybox.layers[0].digest)
    assert source.count(base) == 1  # one node for the shared layer ...
    assert "shared by 3 images" in source
    assert source.count("layer0 -> layer") == 2  # ... with an edge up to each app's own layer
    for k, image in enumerate((busybox, a, b)):
        assert f"image{k} [label=" in source and image.short_id in source
    assert "shared &lt;base&gt;" in source  # the title is escaped in the HTML-like label
    assert "<layer graph:" in repr(graph) and "0x" not in repr(graph)


def test_layer_graph_caption_bytes_are_right(busybox_store: Store) -> None:
    images = [get_image(busybox_store, "busybox"), build_app(busybox_store, "app-a"),
              build_app(busybox_store, "app-b"), build_demo(busybox_store)]
    digests = {d.digest for image in images for d in image.layers}
    on_disk = sum(busybox_store.blob_path(d).stat().st_size for d in digests)
    every_copy = sum(image.size for image in images)
    sharing = layer_sharing(images)
    assert (sharing.stored, sharing.unshared, len(sharing.layers)) == (on_disk, every_copy, len(digests))
    assert on_disk < every_copy
    caption = f"{len(digests)} layers stored once: {on_disk:,} bytes"
    assert caption in sharing.caption and f"vs {every_copy:,} bytes" in sharing.caption
    assert caption in layer_graph(images).source


def test_layer_graph_is_deterministic_and_counts_an_image_once(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    app = build_app(busybox_store, "app-a")
    twice = [client.images.get("busybox"), get_image(busybox_store, "busybox:latest"), app]
    assert layer_sharing(twice) == layer_sharing([get_image(busybox_store, "busybox"), app])
    assert layer_graph(twice).source == layer_graph(list(twice)).source
    assert "image2" not in layer_graph(twice).source


# ---------------------------------------------------------------------------------------- explorer


def test_layer_explorer_builds_and_follows_the_dropdown(busybox_store: Store) -> None:
    pytest.importorskip("ipywidgets")
    demo = build_demo(busybox_store)
    explorer = layer_explorer(demo)
    summary, dropdown, detail = explorer.children
    assert f"{BIG + 6:,}" in summary.value and f"{efficiency(demo):.1%}" in summary.value
    assert [value for _label, value in dropdown.options] == [0, 1, 2, 3]
    assert dropdown.value == 3 and "/app/big.bin" in detail.value and "deleted" in detail.value
    dropdown.value = 2
    assert "/app/greeting.txt" in detail.value and "modified" in detail.value
    assert layer_explorer(demo, layer=1).children[1].value == 1


def test_layer_explorer_of_an_image_without_layers(store: Store) -> None:
    pytest.importorskip("ipywidgets")
    empty = ImageBuilder(store, "scratch").commit("empty:1")
    assert len(layer_explorer(empty).children) == 1


def test_importing_views_and_exercises_loads_no_notebook_library() -> None:
    code = ("import sys, pycontainers.views, pycontainers.exercises; "
            "print(sorted(m for m in ('IPython', 'ipywidgets', 'graphviz', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
