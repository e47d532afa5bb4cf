"""The generated figures of the book's Markdown pages: the reading-order map."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import book_figures  # noqa: E402

pytest.importorskip("matplotlib")

from fancydl.viz.book_map import (  # noqa: E402
    draw_book_map, reading_levels, transitive_reduction)


def test_the_map_lists_exactly_the_numbered_chapters_of_the_toc():
    toc = [chapter for chapter, _ in book_figures.numbered_chapters()]
    assert sorted(book_figures.CHAPTERS) == sorted(toc)


def test_every_prerequisite_comes_earlier_in_the_toc():
    # The book's own order must be a valid reading order of the map.
    position = {chapter: i for i, (chapter, _) in
                enumerate(book_figures.numbered_chapters())}
    late = [(chapter, before) for chapter, (_, needs) in book_figures.CHAPTERS.items()
            for before in needs if position[before] >= position[chapter]]
    assert not late, f"prerequisites placed after their chapter in _toc.yml: {late}"


def test_the_committed_map_is_what_the_script_draws_now(tmp_path):
    fresh = book_figures.write_reading_order(tmp_path / "reading_order.svg")
    committed = book_figures.READING_ORDER
    assert committed.is_file(), "run `python tools/book_figures.py`"
    assert fresh.read_bytes() == committed.read_bytes(), (
        "book/_static/reading_order.svg is out of date: run `python tools/book_figures.py`")


def test_the_intro_embeds_the_map_with_alt_text():
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    figure = intro[intro.index("```{figure} _static/reading_order.svg"):]
    figure = figure[:figure.index("\n```")]
    assert ":alt:" in figure and ":name:" in figure


def test_the_intro_lists_the_chapters_with_the_toc_numbers():
    import re

    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    listed = re.findall(r"^(\d+)\. \{doc\}`(\w+)`", intro, re.MULTILINE)
    toc = [(str(i), chapter) for i, (chapter, _) in
           enumerate(book_figures.numbered_chapters(), start=1)]
    assert listed == toc


def test_levels_put_each_chapter_after_its_latest_prerequisite():
    graph = {"a": [], "b": ["a"], "c": ["a", "b"], "d": [], "e": ["c", "d"]}
    # d has no prerequisites: it moves next to its only dependent, e.
    assert reading_levels(graph) == {"a": 0, "b": 1, "c": 2, "d": 2, "e": 3}


def test_reduction_drops_only_implied_arrows():
    graph = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["a"], "e": ["c", "d"]}
    assert transitive_reduction(graph) == {"a": [], "b": ["a"], "c": ["b"], "d": ["a"],
                                           "e": ["c", "d"]}


@pytest.mark.parametrize("graph, message", [
    ({"a": ["b"], "b": ["a"]}, "cycle: a -> b -> a"),
    ({"a": ["z"]}, "unknown chapters ['z']"),
])
def test_bad_graphs_are_refused(graph, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        reading_levels(graph)


def test_a_prerequisite_given_as_a_string_is_refused():
    with pytest.raises(TypeError, match="prerequisites\\['b'\\] must be a list"):
        transitive_reduction({"a": [], "b": "a"})


def test_every_arrow_joins_neighbouring_columns_left_to_right():
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    graph = {name: needs for name, (_, needs) in book_figures.CHAPTERS.items()}
    labels = {name: label for name, (label, _) in book_figures.CHAPTERS.items()}
    fig = draw_book_map(graph, labels)
    try:
        arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
        assert len(arrows) == sum(map(len, transitive_reduction(graph).values()))
        for arrow in arrows:
            (x0, _), (x1, _) = arrow._posA_posB
            assert 0 < x1 - x0 < 1.5
    finally:
        plt.close(fig)
