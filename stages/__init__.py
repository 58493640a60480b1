"""Stages: one operation or model each, testable without Ray."""
