"""The model registry (configs/models.yaml), where each model's weights come from, and the tiny
random-weight twins that the `tiny` profile and the tests load through the production path."""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import CONFIG_DIR

COMPLETE_MARK = ".complete"


@dataclass(frozen=True)
class ModelEntry:
    family: str
    ref: str
    revision: str | None
    params_b: float
    activation_gb: float
    dtype: str
    role: str
    tasks: tuple[str, ...]
    tiny_module: str
    tiny_subpath: str | None  # some twins share one build (the SD3.5 base and its ControlNets)


def registry() -> dict[str, ModelEntry]:
    data = yaml.safe_load((CONFIG_DIR / "models.yaml").read_text())
    entries = {}
    for family, info in data.items():
        module, _, sub = info["tiny"].partition(":")
        entries[family] = ModelEntry(
            family=family,
            ref=info["ref"],
            revision=info.get("revision"),
            params_b=float(info["params_b"]),
            activation_gb=float(info["activation_gb"]),
            dtype=info["dtype"],
            role=info["role"],
            tasks=tuple(info["tasks"]),
            tiny_module=module,
            tiny_subpath=sub or None,
        )
    return entries


def default_tiny_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "editing-pipeline" / "tiny-models"


def tiny_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg["models"]["tiny_dir"] or default_tiny_dir())


def _tiny_build_dir(root: Path, entry: ModelEntry) -> Path:
    return root / entry.tiny_module.rsplit(".", 1)[-1]


def tiny_path(root: Path, entry: ModelEntry) -> Path:
    build = _tiny_build_dir(root, entry)
    return build / entry.tiny_subpath if entry.tiny_subpath else build


def build_tiny(root: Path, entry: ModelEntry, force: bool = False) -> tuple[Path, float]:
    """Build the twin unless a complete build is there; returns its folder and the seconds spent."""
    build = _tiny_build_dir(root, entry)
    start = time.perf_counter()
    if force or not (build / COMPLETE_MARK).exists():
        build.mkdir(parents=True, exist_ok=True)
        importlib.import_module(entry.tiny_module).build(build)
        (build / COMPLETE_MARK).write_text("built\n")
    return tiny_path(root, entry), time.perf_counter() - start


def resolve(cfg: dict[str, Any], family: str) -> tuple[str, str | None]:
    """The ref and revision a stage should load: an explicit override, the tiny twin, or the
    registry's checkpoint."""
    entry = registry()[family]
    override = cfg["models"]["ref"].get(family)
    if override:
        return str(override), None
    if cfg["models"]["source"] == "tiny":
        return str(tiny_path(tiny_dir(cfg), entry)), None
    return entry.ref, entry.revision


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


def present_locally(entry: ModelEntry) -> str:
    """Whether the checkpoint is in the Hugging Face cache (no network is asked)."""
    from huggingface_hub import scan_cache_dir

    try:
        cache = scan_cache_dir()
    except Exception:
        return "no cache"
    for repo in cache.repos:
        if repo.repo_id == entry.ref:
            return f"cached ({repo.size_on_disk / 1e9:.1f} GB)"
    return "missing"
