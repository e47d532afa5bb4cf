"""One palette for the whole book, and a way to show real source code.

Input is always blue, kernel orange, output green, gradient purple: a reader learns
the colours once.
"""

from __future__ import annotations

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


def show_source(*objects):
    """Display the source code of fancydl objects, highlighted, in a notebook.

    Chapters show the implementation with this instead of a copy that could drift.

    Parameters
    ----------
    *objects : functions or classes
        Shown in order, separated by a blank line.

    Returns
    -------
    IPython.display.Code
        Renders with syntax highlighting (plain text outside IPython).
    """
    from IPython.display import Code

    text = "\n\n".join(inspect.getsource(obj).rstrip() for obj in objects)
    return Code(text, language="python")
