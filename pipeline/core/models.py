"""The model registry (configs/models.yaml) and where each model's weights come from: the hub
checkpoint, a local override, or the tiny random-weight twin (built by `stages.models.tiny`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.config import CONFIG_DIR


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


BYTES_PER_PARAM = {"bfloat16": 2, "float16": 2, "float32": 4}


def actor_memory_gb(
    loads: tuple[str, ...], batch: int, margin: float, entries: dict[str, ModelEntry] | None = None
) -> tuple[float | None, float | None, float | None]:
    """One actor's GPU memory by the registry, in GB: the weights of every family it loads, each
    family's activations times the batch, and their sum times `margin`. `plan` fits pools with it
    and the SD3.5 stages decide from it whether one actor can hold the base and both ControlNets.
    (None, None, None) where a family is not in the registry (a judge's own model)."""
    entries = entries if entries is not None else registry()
    if not loads or any(f not in entries for f in loads):
        return None, None, None
    weights = sum(entries[f].params_b * BYTES_PER_PARAM[entries[f].dtype] for f in loads)
    activations = sum(entries[f].activation_gb for f in loads) * batch
    return round(weights, 1), round(activations, 1), round((weights + activations) * margin, 1)


def default_tiny_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "editing-pipeline" / "tiny-models"


def tiny_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg["models"]["tiny_dir"] or default_tiny_dir())


def tiny_build_dir(root: Path, entry: ModelEntry) -> Path:
    """The folder one twin build writes (the SD3.5 base and its ControlNets share one)."""
    return root / entry.tiny_module.rsplit(".", 1)[-1]


def tiny_path(root: Path, entry: ModelEntry) -> Path:
    build = tiny_build_dir(root, entry)
    return build / entry.tiny_subpath if entry.tiny_subpath else build


def resolve(cfg: dict[str, Any], family: str) -> tuple[str, str | None]:
    """The ref and revision a stage should load: an explicit override, the tiny twin, the
    family's folder under `models.dir`, or the registry's checkpoint at its pinned revision,
    else at the commit the model lock holds (so the hub cache serves exactly the locked files)."""
    from pipeline.core.model_lock import locked_revision

    entry = registry()[family]
    override = cfg["models"]["ref"].get(family)
    if override:
        return str(override), None
    if cfg["models"]["source"] == "tiny":
        return str(tiny_path(tiny_dir(cfg), entry)), None
    if cfg["models"]["dir"]:
        return str(Path(cfg["models"]["dir"]) / family), None
    return entry.ref, entry.revision or locked_revision(cfg, family)


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
