"""The package version, at the ground floor so every layer may record it."""
__version__ = "0.1.0"
