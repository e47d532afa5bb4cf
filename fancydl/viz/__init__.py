"""Drawing helpers shared by the book's chapters.

Requires matplotlib (ipywidgets only for the live controls kept for Colab and
Binder); ``import fancydl`` does not import this package.
"""

from .explorer import explore
from .style import CMAPS, COLORS, show_source

__all__ = ["COLORS", "CMAPS", "explore", "show_source"]
