"""Editing-triplet data pipeline: engine, CLI and run layout."""

__version__ = "0.1.0"
