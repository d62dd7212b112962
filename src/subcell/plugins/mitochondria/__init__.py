"""The `mitochondria` structure (being written)."""
