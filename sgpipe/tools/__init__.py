"""Dataset tools: convert, reshard, export, stats, report."""
