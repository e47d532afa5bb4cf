"""Drawing helpers shared by the book's chapters.

Requires matplotlib (ipywidgets only for the live controls kept for Colab and
Binder); ``import fancydl`` does not import this package.
"""

from .benchmarks import benchmark_rows
from .explorer import explore
from .style import CMAPS, COLORS, show_source

__all__ = ["COLORS", "CMAPS", "benchmark_rows", "explore", "show_source"]
