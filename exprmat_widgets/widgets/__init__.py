"""Notebook widgets: thin front ends that call the core routines."""

__all__ = []
