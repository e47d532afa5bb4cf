"""A reading-order map: which chapters to read before which, drawn from a dict.

The map is a layered drawing of a directed acyclic graph. Each chapter sits in a
column one step to the right of its latest prerequisite; arrows implied by others
(A before B before C makes "A before C" redundant) are left out, so every arrow joins
neighbouring columns. The book's own map is drawn by ``tools/book_figures.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .style import COLORS

__all__ = ["reading_levels", "transitive_reduction", "draw_book_map"]

#: Figure geometry, in inches: one unit of the drawing is one inch.
COLUMN_WIDTH = 1.5
ROW_HEIGHT = 0.62
FONT_SIZE = 9


def _check_graph(prerequisites):
    """Validate ``prerequisites``: known names only, no chapter its own ancestor."""
    if not isinstance(prerequisites, Mapping):
        raise TypeError("prerequisites must be a mapping of chapter -> list of chapters, "
                        f"got {type(prerequisites).__name__}")
    for chapter, before in prerequisites.items():
        if isinstance(before, str) or not isinstance(before, Sequence):
            raise TypeError(f"prerequisites[{chapter!r}] must be a list of chapter names, "
                            f"got {before!r}")
        unknown = [name for name in before if name not in prerequisites]
        if unknown:
            raise ValueError(f"prerequisites[{chapter!r}] names unknown chapters {unknown}; "
                             f"expected some of {list(prerequisites)}")
    state = {}  # chapter -> "visiting" | "done"

    def visit(chapter, path):
        if state.get(chapter) == "done":
            return
        if state.get(chapter) == "visiting":
            cycle = path[path.index(chapter):] + [chapter]
            raise ValueError(f"prerequisites has a cycle: {' -> '.join(cycle)}")
        state[chapter] = "visiting"
        for before in prerequisites[chapter]:
            visit(before, path + [chapter])
        state[chapter] = "done"

    for chapter in prerequisites:
        visit(chapter, [])


def _ancestors(prerequisites):
    """Every chapter's set of direct and indirect prerequisites."""
    found = {}

    def ancestors(chapter):
        if chapter not in found:
            found[chapter] = set()
            for before in prerequisites[chapter]:
                found[chapter] |= {before} | ancestors(before)
        return found[chapter]

    for chapter in prerequisites:
        ancestors(chapter)
    return found


def transitive_reduction(prerequisites):
    """The prerequisites that no other prerequisite already implies.

    Parameters
    ----------
    prerequisites : mapping of str to list of str
        Chapter -> the chapters to read before it.

    Returns
    -------
    dict of str to list of str
        Same keys; ``A`` stays a prerequisite of ``C`` only if no other prerequisite
        ``B`` of ``C`` has ``A`` among its own (direct or indirect) prerequisites.

    Examples
    --------
    >>> transitive_reduction({"a": [], "b": ["a"], "c": ["a", "b"]})
    {'a': [], 'b': ['a'], 'c': ['b']}
    """
    _check_graph(prerequisites)
    ancestors = _ancestors(prerequisites)
    return {chapter: [a for a in before
                      if not any(a in ancestors[b] for b in before if b != a)]
            for chapter, before in prerequisites.items()}


def reading_levels(prerequisites):
    """The column of every chapter: one more than its latest prerequisite's.

    A chapter without prerequisites is placed just before its earliest dependent
    (column 0 if nothing depends on it), so that its arrows stay short.

    Parameters
    ----------
    prerequisites : mapping of str to list of str

    Returns
    -------
    dict of str to int

    Examples
    --------
    >>> reading_levels({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["c", "d"]})
    {'a': 0, 'b': 1, 'c': 2, 'd': 2, 'e': 3}
    """
    _check_graph(prerequisites)
    level = {}

    def depth(chapter):
        if chapter not in level:
            before = prerequisites[chapter]
            level[chapter] = 1 + max(depth(b) for b in before) if before else 0
        return level[chapter]

    for chapter in prerequisites:
        depth(chapter)
    for chapter, before in prerequisites.items():
        dependents = [c for c, b in prerequisites.items() if chapter in b]
        if not before and dependents:
            level[chapter] = min(level[c] for c in dependents) - 1
    return {chapter: level[chapter] for chapter in prerequisites}


def _spread(desired, lowest, highest):
    """Rows at least 1 apart, top to bottom in the order given, near ``desired``."""
    rows = []
    for want in desired:
        rows.append(min(want, rows[-1] - 1) if rows else want)
    shift = sum(desired) / len(desired) - sum(rows) / len(rows)
    shift = min(shift, highest - rows[0])
    shift = max(shift, lowest - rows[-1])
    return [row + shift for row in rows]


def _layout(edges, levels):
    """Row of every chapter: near the mean row of its prerequisites, no overlaps."""
    columns = {}
    for chapter, level in levels.items():  # the mapping's order breaks ties
        columns.setdefault(level, []).append(chapter)
    tallest = max(len(column) for column in columns.values())
    highest, lowest = (tallest - 1) / 2, -(tallest - 1) / 2
    row = {}
    order = {chapter: i for i, chapter in enumerate(levels)}
    for level in sorted(columns):
        column = columns[level]
        centred = [(len(column) - 1) / 2 - i for i in range(len(column))]
        desired = {chapter: (sum(row[b] for b in edges[chapter]) / len(edges[chapter])
                             if edges[chapter] else centred[i])
                   for i, chapter in enumerate(column)}
        column.sort(key=lambda c: (-desired[c], order[c]))
        for chapter, y in zip(column, _spread([desired[c] for c in column],
                                              lowest, highest)):
            row[chapter] = y
    return row, tallest


def draw_book_map(prerequisites, labels, groups=None, group_colors=None,
                  title=None):
    """Draw the reading order of chapters as a layered graph, left to right.

    Parameters
    ----------
    prerequisites : mapping of str to list of str
        Chapter -> the chapters to read before it. The mapping's order (the book's
        order) breaks ties between chapters of one column.
    labels : mapping of str to str
        The text of each chapter's box (may contain ``"\\n"``).
    groups : mapping of str to str, optional
        Chapter -> the part it belongs to; each part gets a colour and a legend entry.
    group_colors : mapping of str to str, optional
        Part -> a matplotlib colour; by default the book's palette in order.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        ``COLUMN_WIDTH`` inches per column wide, ``ROW_HEIGHT`` inches per row of the
        tallest column high (plus a legend row when ``groups`` is given).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Patch

    missing = [chapter for chapter in prerequisites if chapter not in labels]
    if missing:
        raise ValueError(f"labels has no text for chapters {missing}")
    edges = transitive_reduction(prerequisites)
    levels = reading_levels(prerequisites)
    row, tallest = _layout(edges, levels)
    groups = groups or {}
    palette = [COLORS[name] for name in ("input", "output", "kernel", "gradient",
                                         "highlight", "neutral")]
    parts = list(dict.fromkeys(groups[c] for c in prerequisites if c in groups))
    colors = dict(zip(parts, palette)) | dict(group_colors or {})

    width = COLUMN_WIDTH * (max(levels.values()) + 1)
    legend_rows = 0.55 if parts else 0.0
    height = ROW_HEIGHT * tallest + legend_rows + (0.35 if title else 0.0)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, width), ylim=(0, height))
    ax.axis("off")
    centre = legend_rows + ROW_HEIGHT * tallest / 2

    def position(chapter):
        return (COLUMN_WIDTH * (levels[chapter] + 0.5),
                centre + ROW_HEIGHT * row[chapter])

    boxes = {}
    for chapter in prerequisites:
        color = colors.get(groups.get(chapter), COLORS["neutral"])
        boxes[chapter] = ax.text(
            *position(chapter), labels[chapter], ha="center", va="center",
            fontsize=FONT_SIZE, linespacing=1.15, zorder=3,
            bbox=dict(boxstyle="round,pad=0.35", facecolor="white", edgecolor=color,
                      linewidth=1.6))
    # Arrows run from the right edge of a box to the left edge of the next column's
    # box; the edges are measured on the drawn text, in data units (inches).
    fig.canvas.draw()
    to_data = ax.transData.inverted()
    extent = {chapter: to_data.transform(box.get_bbox_patch().get_window_extent())
              for chapter, box in boxes.items()}
    for chapter, before in edges.items():
        for earlier in before:
            start = (extent[earlier][1, 0], position(earlier)[1])
            end = (extent[chapter][0, 0], position(chapter)[1])
            ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9,
                                         color=COLORS["neutral"], linewidth=1.0,
                                         shrinkA=0, shrinkB=0.5, zorder=2))
    if parts:
        handles = [Patch(facecolor="white", edgecolor=colors[p], linewidth=1.6, label=p)
                   for p in parts]
        ax.legend(handles=handles, loc="lower center", ncols=len(parts), frameon=False,
                  fontsize=FONT_SIZE, bbox_to_anchor=(0.5, 0.0),
                  bbox_transform=ax.transAxes, handlelength=1.4, columnspacing=1.5)
    if title:
        ax.text(width / 2, height - 0.2, title, ha="center", va="center",
                fontsize=FONT_SIZE + 1, fontweight="bold")
    return fig
