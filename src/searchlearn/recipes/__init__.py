"""Recipes: the demo, the loop with its config plus a search sweep and a reward stage."""
