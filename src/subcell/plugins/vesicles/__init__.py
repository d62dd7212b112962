"""The `vesicles` structure (being written)."""
