"""(being written in this session; see CONTRIBUTING.md)"""

__all__ = []
