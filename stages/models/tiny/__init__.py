"""Tiny random-weight twins of every registry model: the same classes as the real checkpoints,
saved with `save_pretrained` and loaded through the production `from_pretrained` path, so the
`tiny` profile and the tests prove the wiring in seconds on a CPU. One module per family; each
has `build(folder)`."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from pipeline.core.models import (
    ModelEntry,
    registry,
    tiny_build_dir,
    tiny_dir,
    tiny_path,
)

COMPLETE_MARK = ".complete"


def build_tiny(root: Path, entry: ModelEntry, force: bool = False) -> tuple[Path, float]:
    """Build the twin unless a complete build is there; returns its folder and the seconds spent."""
    build = tiny_build_dir(root, entry)
    start = time.perf_counter()
    if force or not (build / COMPLETE_MARK).exists():
        build.mkdir(parents=True, exist_ok=True)
        importlib.import_module(entry.tiny_module).build(build)
        (build / COMPLETE_MARK).write_text("built\n")
    return tiny_path(root, entry), time.perf_counter() - start


def ensure_tiny(cfg: dict[str, Any], families: list[str], log=print) -> None:
    if cfg["models"]["source"] != "tiny":
        return
    root = tiny_dir(cfg)
    entries = registry()
    for family in families:
        if cfg["models"]["ref"].get(family):
            continue
        path, seconds = build_tiny(root, entries[family])
        if seconds > 0.5:
            log(f"built tiny {family} in {seconds:.1f}s at {path}")
