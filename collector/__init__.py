"""tokenbook.collector."""
