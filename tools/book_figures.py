"""Draw the generated figures of the book's Markdown pages (the notebooks draw their own).

Today one figure: the reading-order map of the introduction, which chapter to read
before which, written to ``book/_static/reading_order.svg`` from :data:`CHAPTERS` below
and the parts of ``_toc.yml``. Run it after changing either:

    python tools/book_figures.py

``tests/test_book_figures.py`` fails when the committed file is not what this script
draws now, or when :data:`CHAPTERS` and ``_toc.yml`` disagree.
"""

from __future__ import annotations

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
READING_ORDER = ROOT / "book" / "_static" / "reading_order.svg"

#: Every numbered chapter: (short label for the map, the chapters to read before it).
#: List only direct needs; the map drops the arrows that others imply.
CHAPTERS = {
    "conv_cnn_vs_math": ("Convolution:\nCNN vs maths", []),
    "im2col": ("Convolution as\nmatrix product", ["conv_cnn_vs_math"]),
    "transposed_conv": ("Transposed\nconvolution", ["im2col"]),
    "dilated_conv": ("Dilated\nconvolution", ["im2col", "transposed_conv"]),
    "grouped_conv_shuffle": ("Grouped conv,\nchannel shuffle", ["im2col"]),
    "squeeze_excitation": ("Squeeze-and-\nExcitation", ["im2col"]),
    "pointwise_depthwise": ("1×1, depthwise-\nseparable conv", ["im2col",
                                                               "grouped_conv_shuffle"]),
    "deformable_conv": ("Deformable\nconvolution", ["im2col", "dilated_conv"]),
    "deconvolution": ("Deconvolution\n(signals)", ["conv_cnn_vs_math",
                                                  "transposed_conv"]),
    "pooling": ("Pooling: max,\nmean, min", ["im2col"]),
    "stochastic_pooling": ("Stochastic\npooling", ["pooling"]),
    "roi_pooling": ("ROI pooling,\nROI Align", ["pooling"]),
    "batch_norm": ("Batch\nNormalization", ["im2col"]),
    "softmax": ("Softmax, cross-\nentropy", []),
    "training_cnn": ("Training a CNN\nfrom scratch", ["im2col", "pooling", "batch_norm",
                                                     "softmax"]),
}


def numbered_chapters():
    """``[(chapter, part caption), ...]`` of the numbered parts of ``_toc.yml``, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [(entry["file"].removeprefix("book/"), part["caption"])
            for part in toc.get("parts", []) if part.get("numbered")
            for entry in part["chapters"]]


def reading_order_figure():
    """The reading-order map of the chapters, numbered as the book numbers them."""
    from fancydl.viz.book_map import draw_book_map

    chapters = numbered_chapters()
    number = {chapter: i for i, (chapter, _) in enumerate(chapters, start=1)}
    order = [chapter for chapter, _ in chapters if chapter in CHAPTERS]
    order += [chapter for chapter in CHAPTERS if chapter not in number]
    prerequisites = {chapter: CHAPTERS[chapter][1] for chapter in order}
    labels = {chapter: (f"{number[chapter]}. " if chapter in number else "")
              + CHAPTERS[chapter][0] for chapter in order}
    return draw_book_map(prerequisites, labels, groups=dict(chapters))


def write_reading_order(path=READING_ORDER):
    """Draw the map and save it as an SVG whose bytes depend on nothing but the drawing."""
    import matplotlib
    import matplotlib.pyplot as plt

    # A fixed salt for the SVG's element ids and no date: the same map, the same file.
    with matplotlib.rc_context({"svg.hashsalt": "fancy-dl-book reading order",
                                "svg.fonttype": "path"}):
        fig = reading_order_figure()
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
    return path


def main():
    sys.path.insert(0, str(ROOT))
    print(f"wrote {write_reading_order().relative_to(ROOT)}")


if __name__ == "__main__":
    main()
