"""Engines decide who runs the (bucket, row-block) tiles; ``local`` runs them in this process."""
