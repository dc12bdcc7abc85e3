"""Placeholder filled by this module's implementation."""
__all__: list[str] = []
