"""Developer tools, not part of a run: the demo, generated toy data, the recipe reference."""
