"""tokenbook.processor."""
