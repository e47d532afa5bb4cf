"""One palette for the whole book, and a way to show real source code.

Input is always blue, kernel orange, output green, gradient purple: a reader learns
the colours once.
"""

from __future__ import annotations

import html
import inspect

COLORS = {
    "input": "#4C72B0",
    "kernel": "#DD8452",
    "output": "#55A868",
    "gradient": "#8172B3",
    "highlight": "#C44E52",
    "neutral": "#8C8C8C",
}

#: Colormaps for images of each role (sequential for values, diverging for gradients).
CMAPS = {"input": "Blues", "kernel": "Oranges", "output": "Greens",
         "gradient": "PuOr", "image": "gray"}


#: Listings longer than this many lines render collapsed.
COLLAPSE_LINES = 40


class SourceListing:
    """Source code that renders highlighted, collapsed when long (see :func:`show_source`).

    Attributes
    ----------
    text : str
        The source code.
    title : str
        What the listing is the source of (qualified names).
    """

    def __init__(self, text, title, collapse_lines=COLLAPSE_LINES):
        self.text = text
        self.title = title
        self.collapse_lines = collapse_lines

    @property
    def n_lines(self):
        """Number of lines of the listing."""
        return len(self.text.splitlines())

    @property
    def collapsed(self):
        """Whether the listing renders behind a toggle."""
        return self.n_lines > self.collapse_lines

    def __repr__(self):
        return self.text

    def _repr_html_(self):
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        # Its own scoped stylesheet: the same colours in the book, Jupyter and Colab.
        formatter = HtmlFormatter(cssclass="fdl-source",
                                  prestyles="overflow-x:auto;line-height:125%;"
                                            "margin:0;padding:0.5em")
        css = "\n".join(rule for rule in formatter.get_style_defs(".fdl-source")
                        .splitlines() if rule.startswith(".fdl-source"))
        code = f"<style>{css}</style>{highlight(self.text, PythonLexer(), formatter)}"
        if not self.collapsed:
            return code
        summary = html.escape(f"Source of {self.title} ({self.n_lines} lines)")
        return (f'<details class="fdl-source-listing"><summary style="cursor:pointer">'
                f"{summary}</summary>\n{code}</details>")


def _qualified_name(obj):
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}.{name}" if module else name


def show_source(*objects, collapse_lines=COLLAPSE_LINES):
    """Display the source code of fancydl objects, highlighted, in a notebook.

    Chapters show the implementation with this instead of a copy that could drift.
    A listing longer than ``collapse_lines`` lines renders collapsed, behind an HTML
    ``<details>`` toggle whose summary reads "Source of <qualified name> (N lines)",
    so the lesson reads first; a short one renders inline.

    Parameters
    ----------
    *objects : functions, classes or modules
        Shown in order, separated by a blank line.
    collapse_lines : int
        Longest listing shown expanded.

    Returns
    -------
    SourceListing
        Renders as highlighted HTML in the book, Jupyter and Colab; its text form
        (outside IPython, ``print``) is the plain source.

    Examples
    --------
    >>> listing = show_source(show_source, collapse_lines=10)
    >>> listing.collapsed, listing.title
    (True, 'fancydl.viz.style.show_source')
    """
    if not objects:
        raise TypeError("show_source needs at least one object, got none")
    text = "\n\n".join(inspect.getsource(obj).rstrip() for obj in objects)
    title = ", ".join(_qualified_name(obj) for obj in objects)
    return SourceListing(text, title, collapse_lines)
