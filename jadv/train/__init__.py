"""jadv.train (see DESIGN)."""
