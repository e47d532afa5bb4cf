"""Drawing helpers shared by the book's chapters.

Requires matplotlib (and ipywidgets for the live controls); ``import fancydl`` does
not import this package.
"""

from .style import COLORS, CMAPS, show_source

__all__ = ["COLORS", "CMAPS", "show_source"]
