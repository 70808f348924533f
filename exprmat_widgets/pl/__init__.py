"""Static figures of the tutorial (matplotlib); each returns the Figure."""

__all__ = []
