"""Matplotlib figures (one module per topic)."""
