"""fancydl.viz.explore (precomputed figure explorers) and show_source listings."""

import html.parser
import re

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fancydl.viz import explore, show_source  # noqa: E402
from fancydl.viz.style import SourceListing  # noqa: E402

CALLS = []


def draw(k, mode="max", scale=1.0):
    CALLS.append((k, mode, scale))
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, k * scale])
    ax.set_title(f"{mode}, k = {k}")
    return fig


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.append(attrs["id"])


def _parse(markup):
    parser = _Ids()
    parser.feed(markup)
    return parser


def test_one_image_per_combination_in_product_order_with_alt_text():
    CALLS.clear()
    ex = explore(draw, {"k": [1, 2, 3], "mode": ["max", "avg"]}, caption="Pooling")
    assert len(ex) == 6 and len(ex.images) == 6
    assert CALLS == [(1, "max", 1.0), (1, "avg", 1.0), (2, "max", 1.0),
                     (2, "avg", 1.0), (3, "max", 1.0), (3, "avg", 1.0)]
    images = [a for t, a in _parse(ex._repr_html_()).tags if t == "img"]
    assert [a["data-index"] for a in images] == [str(k) for k in range(6)]
    assert images[3]["alt"] == "Pooling (k = 2, mode = avg)"
    assert [("hidden" in a) for a in images] == [False] + [True] * 5
    assert all(a["src"].startswith("data:image/png;base64,iVBOR") for a in images)
    assert repr(ex) == ("Explorer: 6 precomputed images over k (3 values) x "
                        "mode (2 values)")


def test_figures_are_closed_after_rendering():
    before = plt.get_fignums()
    explore(draw, {"k": [1, 2], "scale": [0.5, 2.0]})
    assert plt.get_fignums() == before


def test_controls_slider_for_numbers_radio_for_few_strings_select_for_many():
    ex = explore(draw, {"k": [1, 2], "mode": ["max", "avg"], "scale": [0.5, 1.5]},
                 labels={"k": "kernel size"})
    tags = _parse(ex._repr_html_()).tags
    ranges = [a for t, a in tags if t == "input" and a.get("type") == "range"]
    assert [(r["min"], r["max"], r["aria-valuetext"]) for r in ranges] == [
        ("0", "1", "1"), ("0", "1", "0.5")]
    radios = [a for t, a in tags if t == "input" and a.get("type") == "radio"]
    assert [r["value"] for r in radios] == ["0", "1"]
    labels = [a for t, a in tags if t == "label" and "for" in a]
    assert {label["for"] for label in labels} == {r["id"] for r in ranges}
    markup = ex._repr_html_()
    assert ">kernel size</label>" in markup
    assert 'alt="Figure (kernel size = 2, mode = max, scale = 0.5)"' in markup
    many = explore(lambda mode: draw(1, mode), {"mode": list("abcdefg")})
    assert [t for t, _ in _parse(many._repr_html_()).tags].count("option") == 7


def test_element_ids_unique_within_and_across_calls():
    controls = {"k": [1, 2], "mode": ["max", "avg"]}
    first, second = explore(draw, controls), explore(draw, controls)
    ids = _parse(first._repr_html_()).ids + _parse(second._repr_html_()).ids
    assert len(ids) == len(set(ids)) == 2 * 2  # root and one slider each
    assert first.element_id != second.element_id


def test_html_is_deterministic_apart_from_the_call_counter():
    controls = {"k": [1, 2], "scale": [0.5, 1.0]}
    first, second = explore(draw, controls), explore(draw, controls)
    assert first.images == second.images
    counter = re.compile(r"fdl-explorer-([0-9a-f]{8})-\d+")
    assert (counter.sub(r"fdl-explorer-\1-N", first._repr_html_())
            == counter.sub(r"fdl-explorer-\1-N", second._repr_html_()))


def test_indexed_png_is_smaller_and_full_colour_is_available():
    indexed = explore(draw, {"k": [3]}).images[0]
    full = explore(draw, {"k": [3]}, palette=None).images[0]
    assert indexed[:8] == full[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"PLTE" in indexed and b"PLTE" not in full
    assert len(indexed) < len(full)


def test_html_is_self_contained():
    markup = explore(draw, {"k": [1, 2]})._repr_html_()
    assert "<script src" not in markup and "require(" not in markup
    assert "http://" not in markup and "https://" not in markup


@pytest.mark.parametrize("controls, error, message", [
    ([("k", [1])], TypeError, "controls must be a dict"),
    ({}, ValueError, "controls must name at least one"),
    ({"k": []}, ValueError, "controls['k'] must hold at least one"),
    ({"k": 3}, TypeError, "controls['k'] must be a list"),
    ({"k": "abc"}, TypeError, "controls['k'] must be a list"),
    ({"not a name": [1]}, ValueError, "'not a name'"),
    ({"k": [1.0, 1.0000001]}, ValueError, "controls['k'] has values that display"),
    ({"k": list(range(7)), "scale": list(range(7))}, ValueError, "49 combinations"),
])
def test_bad_controls_name_the_argument(controls, error, message):
    with pytest.raises(error, match=re.escape(message)):
        explore(draw, controls)


def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="draw must be callable"):
        explore("draw", {"k": [1]})
    with pytest.raises(TypeError, match="draw must return a matplotlib Figure"):
        explore(lambda k: None, {"k": [1]})
    with pytest.raises(ValueError, match=r"labels names parameters .*\['x'\]"):
        explore(draw, {"k": [1]}, labels={"x": "X"})
    with pytest.raises(ValueError, match="dpi must be a positive number, got 0"):
        explore(draw, {"k": [1]}, dpi=0)
    with pytest.raises(ValueError, match="palette must be None or an int from 2 to 256"):
        explore(draw, {"k": [1]}, palette=300)
    with pytest.raises(ValueError, match="max_images=2"):
        explore(draw, {"k": [1, 2, 3]}, max_images=2)


def test_show_source_collapses_long_listings_only():
    long = show_source(explore)
    assert isinstance(long, SourceListing) and long.collapsed
    assert long.title == "fancydl.viz.explorer.explore"
    markup = long._repr_html_()
    assert markup.startswith('<details class="fdl-source-listing">')
    assert f"Source of fancydl.viz.explorer.explore ({long.n_lines} lines)" in markup
    assert long.n_lines == len(repr(long).splitlines()) > 40
    short = show_source(SourceListing.__repr__)
    assert not short.collapsed and "<details" not in short._repr_html_()
    assert repr(short).startswith("    def __repr__(self):")
    with pytest.raises(TypeError, match="at least one object"):
        show_source()
