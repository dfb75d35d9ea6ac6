"""Approximate candidate generators; every candidate is re-scored exactly by a backend."""
