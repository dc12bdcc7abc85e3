"""jadv.attacks (see DESIGN)."""
