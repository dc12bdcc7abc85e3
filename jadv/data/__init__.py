"""jadv.data (see DESIGN)."""
