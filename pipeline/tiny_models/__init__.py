"""Tiny random-weight twins of the real models, built locally for tests and the tiny profile."""
