"""Data: the dataset registry and local-file loading."""
