"""jadv.analysis (see DESIGN)."""
