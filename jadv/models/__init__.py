"""jadv.models (see DESIGN)."""
