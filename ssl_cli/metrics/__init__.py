"""Metrics and post-processing, pure Python/numpy."""
